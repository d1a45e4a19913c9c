/*
 * axc-supervisor: the per-run supervisor of axcenter's local engine.
 *
 * As slurmstepd, conmon or containerd-shim do, one small process owns each run, outside
 * the service's process tree, so that stopping, upgrading or killing `axc up` leaves the
 * job running and its end recorded. It:
 *
 *   - leads a session of its own, so that it outlives the service (which is its parent
 *     until it dies; init, or the nearest subreaper, after that);
 *   - confines the job (when started as root): a control group of its own with the
 *     memory, CPUs, number of processes and devices it was given (cgroup v1 or v2,
 *     whichever the host offers), a mount namespace of its own whose /proc shows only the
 *     job's own processes, and the job's unix identity (groups, gid, uid) before exec;
 *   - starts the job in a session and process group of its own, stdin on /dev/null, the
 *     job's leader killed if the supervisor dies (PR_SET_PDEATHSIG);
 *   - copies the job's output (a pipe) to the log it was given as its own stderr, up to
 *     a size limit: past it the job is stopped (cause log_limit); the log rotates at a
 *     size (LOG renamed LOG.START, START the offset of its first byte in the job's whole
 *     output, a new LOG opened) and only the newest rotated files are kept;
 *   - is the subreaper of everything the job spawns, so a process that escapes the job's
 *     group (setsid, double fork) is still its descendant and is killed at the end;
 *   - enforces the time limit (SIGTERM to the group, SIGKILL after the grace period);
 *   - takes stop requests: the service writes RUN_DIR/stop ("REASON GRACE_MS") and sends
 *     SIGUSR1; the first cause wins, a later request may only shorten the grace;
 *   - when the leader exits, kills everything left in the job's control group (and of
 *     its descendants) until none is left: the run ends then, not before, and writes
 *     RUN_DIR/exit durably (fsync of the file and of the directory) before it exits.
 *
 * Records (written to a temporary name, then renamed: a reader sees all or nothing):
 *   RUN_DIR/started  "SUP_PID JOB_PID STARTED_NS\n"
 *   RUN_DIR/exit     "STARTED_NS ENDED_NS CAUSE STATUS TIME_LIMIT_S MEMORY_MB LOG_MAX\n"
 *       CAUSE  none | cancel | preempt | shutdown | time_limit | oom | log_limit
 *       STATUS exited:CODE | signaled:SIGNO | launch_failed:STAGE:ERRNO
 *       STAGE  cgroup | namespace | identity | workdir | output | exec
 *
 * On its stdout (a pipe to the service that asked for the run) it writes
 * "R SUP_PID JOB_PID STARTED_NS\n" once the job runs, or "F STAGE ERRNO\n" if the job
 * could not be started, then closes it. The policy (outcomes, messages, money) is the
 * service's: this program only records facts.
 *
 * usage: axc-supervisor RUN_DIR [OPTIONS] -- COMMAND [ARG...]
 *   -w DIR     working directory (entered as the job's user)
 *   -t SECS    time limit (0: none)          -k MS      grace between SIGTERM and SIGKILL
 *   -u UID -g GID [-G GID,GID...]           the job's identity (never 0)
 *   -c NAME    control group NAME (relative to each hierarchy's root)
 *   -m BYTES   memory limit                  -C MILLI   CPUs, in thousandths
 *   -p N       process limit                 -d RULES   device rules (v1), ';'-separated
 *   -L BYTES   log size limit (0: none)      -P         private /proc (hidepid)
 *   -l PATH    the log's path (fd 2), to rotate it   -r BYTES  rotate at (0: never)
 *   -K N       rotated files kept (at least 1)
 *   -o FILE    stdout (and stderr, without -e) to FILE instead of the log, opened as the
 *              job's user in its working directory; -e FILE stderr; -a append to them
 *   -S         a step (srun) in a live run: join the run's group -c (create, limit and
 *              remove nothing: the run's limits hold, and the run's end kills the step),
 *              end only the step's own processes, and stop the step (cause shutdown)
 *              when the process that started this supervisor dies
 * The job's environment is the supervisor's own.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/bpf.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CGROOT "/sys/fs/cgroup"

static const char *run_dir;
static char cause[16] = "none";

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void die(const char *what) {
    dprintf(2, "axc-supervisor: %s: %s\n", what, strerror(errno));
    _exit(111);
}

static void set_cause(const char *what) {
    if (strcmp(cause, "none") == 0) snprintf(cause, sizeof cause, "%s", what);
}

/* Write NAME in the run directory atomically; durably if SYNC. */
static int write_record(const char *name, const char *text, int sync) {
    char tmp[PATH_MAX], path[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", run_dir, name);
    snprintf(path, sizeof path, "%s/%s", run_dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len || (sync && fsync(fd) != 0)) {
        close(fd);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) return -1;
    if (sync) {
        int dfd = open(run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return 0;
}

/* Read a stop request: "REASON GRACE_MS". Returns the grace, or -1. */
static long long read_stop(char *reason, size_t size) {
    char path[PATH_MAX], buf[64] = {0};
    snprintf(path, sizeof path, "%s/stop", run_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    long long grace = -1;
    char word[16] = {0};
    if (sscanf(buf, "%15s %lld", word, &grace) != 2 || grace < 0) return -1;
    snprintf(reason, size, "%s", word);
    return grace;
}

/* ---- control groups: one per run, v1 (one hierarchy per controller) or v2 ---------- */

static const char *cg_name;     /* NULL: not confined */
static int cg_v2;
/* a v1 host with the v2 tree mounted beside (hybrid): devices are filtered in both */
static int cg_hybrid;
#define HYBRID CGROOT "/unified"
static int dev_bpf_attach(const char *group_dir, const char *rules);
static const char *V1[] = {"memory", "cpu", "pids", "devices"};
#define NV1 (sizeof V1 / sizeof *V1)

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* mkdir -p of DIR below ROOT; with v2, each level gets the controllers enabled below it */
static int make_dirs(const char *root, const char *name) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", root, name);
    for (char *p = path + strlen(root) + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char saved = *p;
            *p = 0;
            if (cg_v2) {  /* the parent must delegate the controllers to its children */
                char ctl[PATH_MAX + 32];
                char *slash = strrchr(path, '/');
                *slash = 0;
                snprintf(ctl, sizeof ctl, "%s/cgroup.subtree_control", path);
                *slash = '/';
                write_file(ctl, "+memory +cpu +pids");
            }
            if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
            *p = saved;
            if (saved == 0) return 0;
        }
    }
}

static void cg_path(char *out, size_t size, const char *ctrl, const char *file) {
    if (cg_v2)
        snprintf(out, size, CGROOT "/%s/%s", cg_name, file);
    else
        snprintf(out, size, CGROOT "/%s/%s/%s", ctrl, cg_name, file);
}

static int cg_write(const char *ctrl, const char *file, const char *text) {
    char path[PATH_MAX];
    cg_path(path, sizeof path, ctrl, file);
    return write_file(path, text);
}

/* Create the run's group with its limits. Returns 0, or -1 with errno. */
static int cg_create(long long memory, long long cpu_milli, long long pids, char *devices) {
    char v[64];
    struct stat st;
    cg_v2 = stat(CGROOT "/cgroup.controllers", &st) == 0;
    if (cg_v2) {
        if (make_dirs(CGROOT, cg_name) != 0) return -1;
        if (memory > 0) {
            snprintf(v, sizeof v, "%lld", memory);
            if (cg_write("", "memory.max", v) != 0) return -1;
            cg_write("", "memory.swap.max", "0");
        }
        if (cpu_milli > 0) {
            snprintf(v, sizeof v, "%lld 100000", cpu_milli * 100);
            if (cg_write("", "cpu.max", v) != 0) return -1;
        }
        if (pids > 0) {
            snprintf(v, sizeof v, "%lld", pids);
            if (cg_write("", "pids.max", v) != 0) return -1;
        }
        if (devices) {
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, CGROOT "/%s", cg_name);
            if (dev_bpf_attach(dir, devices) != 0) return -1;
        }
        return 0;
    }
    for (size_t i = 0; i < NV1; i++) {
        char root[64];
        snprintf(root, sizeof root, CGROOT "/%s", V1[i]);
        if (make_dirs(root, cg_name) != 0) return -1;
    }
    if (memory > 0) {
        snprintf(v, sizeof v, "%lld", memory);
        if (cg_write("memory", "memory.limit_in_bytes", v) != 0) return -1;
        /* memory and swap together (where swap is accounted): no spilling past it */
        if (cg_write("memory", "memory.memsw.limit_in_bytes", v) != 0 && errno != ENOENT)
            return -1;
    }
    if (cpu_milli > 0) {
        if (cg_write("cpu", "cpu.cfs_period_us", "100000") != 0) return -1;
        snprintf(v, sizeof v, "%lld", cpu_milli * 100);
        if (cg_write("cpu", "cpu.cfs_quota_us", v) != 0) return -1;
        snprintf(v, sizeof v, "%lld", cpu_milli * 1024 / 1000 > 2 ? cpu_milli * 1024 / 1000 : 2);
        cg_write("cpu", "cpu.shares", v);
    }
    if (pids > 0) {
        snprintf(v, sizeof v, "%lld", pids);
        if (cg_write("pids", "pids.max", v) != 0) return -1;
    }
    if (devices) {
        cg_hybrid = stat(HYBRID "/cgroup.procs", &st) == 0;
        if (cg_hybrid) {
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, HYBRID "/%s", cg_name);
            if (make_dirs(HYBRID, cg_name) != 0 || dev_bpf_attach(dir, devices) != 0) return -1;
        }
        if (cg_write("devices", "devices.deny", "a") != 0) return -1;
        for (char *rule = strtok(devices, ";"); rule; rule = strtok(NULL, ";"))
            if (*rule && cg_write("devices", "devices.allow", rule) != 0) return -1;
    }
    return 0;
}

/* cgroup v2 has no device files: its device controller is a BPF program attached to the
 * group. Compile the rules ("TYPE MAJOR:MINOR ACCESS", '*' for any; 'a' for any type)
 * into one: allow the first rule that matches the device and holds every access asked
 * (mknod m, read r, write w), deny otherwise. */
static int ins(struct bpf_insn *prog, int n, __u8 code, int dst, int src, int off, int imm) {
    prog[n].code = code;
    prog[n].dst_reg = dst;
    prog[n].src_reg = src;
    prog[n].off = (__s16)off;
    prog[n].imm = imm;
    return n + 1;
}

static int dev_bpf_attach(const char *group_dir, const char *rules) {
    struct bpf_insn prog[2048];
    int n = 0;
    /* r2 = device type, r3 = access asked, r4 = major, r5 = minor */
    n = ins(prog, n, BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0);
    n = ins(prog, n, BPF_ALU64 | BPF_AND | BPF_K, 2, 0, 0, 0xffff);
    n = ins(prog, n, BPF_LDX | BPF_MEM | BPF_W, 3, 1, 0, 0);
    n = ins(prog, n, BPF_ALU64 | BPF_RSH | BPF_K, 3, 0, 0, 16);
    n = ins(prog, n, BPF_LDX | BPF_MEM | BPF_W, 4, 1, 4, 0);
    n = ins(prog, n, BPF_LDX | BPF_MEM | BPF_W, 5, 1, 8, 0);
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", rules);
    char *save = NULL;
    for (char *rule = strtok_r(copy, ";", &save); rule; rule = strtok_r(NULL, ";", &save)) {
        char type, major_s[16], minor_s[16], access_s[8];
        if (sscanf(rule, " %c %15[^:]:%15s %7s", &type, major_s, minor_s, access_s) != 4) {
            if (sscanf(rule, " %c", &type) == 1 && type == 'a') {
                snprintf(major_s, sizeof major_s, "*");
                snprintf(minor_s, sizeof minor_s, "*");
                snprintf(access_s, sizeof access_s, "rwm");
            } else {
                errno = EINVAL;
                return -1;
            }
        }
        int access = (strchr(access_s, 'm') ? BPF_DEVCG_ACC_MKNOD : 0) |
                     (strchr(access_s, 'r') ? BPF_DEVCG_ACC_READ : 0) |
                     (strchr(access_s, 'w') ? BPF_DEVCG_ACC_WRITE : 0);
        int dev_type = type == 'c' ? BPF_DEVCG_DEV_CHAR : type == 'b' ? BPF_DEVCG_DEV_BLOCK : 0;
        int check_major = strcmp(major_s, "*") != 0, check_minor = strcmp(minor_s, "*") != 0;
        /* the block: [type] access(3) [major] [minor] allow(2); each test jumps past it */
        int len = (dev_type ? 1 : 0) + 3 + check_major + check_minor + 2;
        if (n + len + 2 > (int)(sizeof prog / sizeof *prog)) {
            errno = E2BIG;
            return -1;
        }
        int end = n + len; /* the first instruction after the block */
        if (dev_type) n = ins(prog, n, BPF_JMP | BPF_JNE | BPF_K, 2, 0, end - n - 1, dev_type);
        n = ins(prog, n, BPF_ALU64 | BPF_MOV | BPF_X, 6, 3, 0, 0);
        n = ins(prog, n, BPF_ALU64 | BPF_AND | BPF_K, 6, 0, 0, ~access);
        n = ins(prog, n, BPF_JMP | BPF_JNE | BPF_K, 6, 0, end - n - 1, 0);
        if (check_major) n = ins(prog, n, BPF_JMP | BPF_JNE | BPF_K, 4, 0, end - n - 1, atoi(major_s));
        if (check_minor) n = ins(prog, n, BPF_JMP | BPF_JNE | BPF_K, 5, 0, end - n - 1, atoi(minor_s));
        n = ins(prog, n, BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
        n = ins(prog, n, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    }
    n = ins(prog, n, BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
    n = ins(prog, n, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (__u64)(unsigned long)prog;
    attr.insn_cnt = (__u32)n;
    attr.license = (__u64)(unsigned long)"Apache-2.0";
    int prog_fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
    if (prog_fd < 0) return -1;
    int group_fd = open(group_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (group_fd < 0) {
        close(prog_fd);
        return -1;
    }
    memset(&attr, 0, sizeof attr);
    attr.target_fd = (__u32)group_fd;
    attr.attach_bpf_fd = (__u32)prog_fd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    int rc = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof attr);
    int saved = errno;
    close(group_fd);
    close(prog_fd); /* the group holds the program from now on */
    errno = saved;
    return rc;
}

/* Put process PID in the run's group (every hierarchy). */
static int cg_join(pid_t pid) {
    char v[32];
    snprintf(v, sizeof v, "%d", pid);
    if (cg_v2) return cg_write("", "cgroup.procs", v);
    for (size_t i = 0; i < NV1; i++)
        if (cg_write(V1[i], "cgroup.procs", v) != 0) return -1;
    if (cg_hybrid) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, HYBRID "/%s/cgroup.procs", cg_name);
        if (write_file(path, v) != 0) return -1;
    }
    return 0;
}

/* SIGKILL every process in the run's group until it is empty, reaping our children.
 * No new process can appear meanwhile: the process limit drops to 0 first (v1), or the
 * kernel kills the whole group at once (v2's cgroup.kill). */
static void cg_kill_all(void) {
    char path[PATH_MAX];
    if (cg_v2) {
        cg_write("", "cgroup.kill", "1");
    } else {
        cg_write("pids", "pids.max", "0");
    }
    cg_path(path, sizeof path, cg_v2 ? "" : "pids", "cgroup.procs");
    for (int round = 0; round < 100000; round++) {
        FILE *f = fopen(path, "re");
        if (!f) return;
        int pid, any = 0;
        while (fscanf(f, "%d", &pid) == 1) {
            kill(pid, SIGKILL);
            any = 1;
        }
        fclose(f);
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        if (!any) return;
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
}

/* Did the kernel's OOM killer kill anything in the run's group? */
static int cg_oom_killed(void) {
    char path[PATH_MAX], line[128];
    cg_path(path, sizeof path, "memory", cg_v2 ? "memory.events" : "memory.oom_control");
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    long long n = 0;
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "oom_kill %lld", &n) == 1) {
            found = 1;
            break;
        }
    fclose(f);
    return found && n > 0;
}

static void cg_remove(void) {
    char path[PATH_MAX];
    if (cg_v2) {
        snprintf(path, sizeof path, CGROOT "/%s", cg_name);
        rmdir(path);
        return;
    }
    for (size_t i = 0; i < NV1; i++) {
        snprintf(path, sizeof path, CGROOT "/%s/%s", V1[i], cg_name);
        rmdir(path);
    }
    if (cg_hybrid) {
        snprintf(path, sizeof path, HYBRID "/%s", cg_name);
        rmdir(path);
    }
}

/* SIGKILL every child of ours until none is left (we are their subreaper). */
static void kill_descendants(pid_t self) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", self, self);
    for (;;) {
        FILE *f = fopen(path, "re");
        int any = 0;
        if (f) {
            int pid;
            while (fscanf(f, "%d", &pid) == 1) {
                kill(pid, SIGKILL);
                any = 1;
            }
            fclose(f);
        }
        pid_t w;
        while ((w = waitpid(-1, NULL, any ? 0 : WNOHANG)) > 0) {
            any = 1;
        }
        if (w < 0 && errno == ECHILD) return;
        if (!any) return;
    }
}

/* ---- the job's output: from its pipe to the log, up to the limit ------------------ */

static long long log_max, log_written;
static int log_full;
/* rotation: the log's path, its size now, the offset of its first byte in the job's
 * whole output (over every run of the job), the size it rotates at, files kept */
static const char *log_path;
static long long log_size, log_start, rotate_at;
static int rotate_keep = 4;
static uid_t log_uid;
static gid_t log_gid;
static int log_owned;

/* The rotated files of the log (LOG.START): their starts, newest last, in *starts
 * (malloc'd), and the end of the newest (where the live log starts). */
static int log_segments(long long **starts, long long *end) {
    *starts = NULL;
    *end = 0;
    if (!log_path) return 0;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", log_path);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : log_path;
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, base, blen) != 0 || e->d_name[blen] != '.') continue;
        const char *digits = e->d_name + blen + 1;
        if (!*digits || strspn(digits, "0123456789") != strlen(digits)) continue;
        long long start = atoll(digits);
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            long long *grown = realloc(*starts, cap * sizeof **starts);
            if (!grown) break;
            *starts = grown;
        }
        (*starts)[n++] = start;
        struct stat st;
        char full[PATH_MAX];
        snprintf(full, sizeof full, "%s.%lld", log_path, start);
        if (stat(full, &st) == 0 && start + st.st_size > *end) *end = start + st.st_size;
    }
    closedir(d);
    for (int a = 1; a < n; a++)  /* few files: insertion sort */
        for (int b = a; b > 0 && (*starts)[b - 1] > (*starts)[b]; b--) {
            long long t = (*starts)[b];
            (*starts)[b] = (*starts)[b - 1];
            (*starts)[b - 1] = t;
        }
    return n;
}

/* Where the live log stands: its size, and its start in the job's whole output. */
static void log_locate(void) {
    struct stat st;
    log_size = fstat(2, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
    long long *starts;
    log_segments(&starts, &log_start);
    free(starts);
}

/* LOG -> LOG.START, a new LOG (the job's user's, 0600) onto fd 2, the oldest rotated
 * files beyond the number kept removed. Any step that fails leaves the output going on
 * into the file it goes to. */
static void log_rotate(void) {
    char old[PATH_MAX];
    snprintf(old, sizeof old, "%s.%lld", log_path, log_start);
    int fd = open(log_path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return;
    if (rename(log_path, old) != 0) {
        close(fd);
        return;
    }
    close(fd);
    fd = open(log_path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        (void)!rename(old, log_path);  /* put it back: one file, growing on */
        return;
    }
    if (log_owned) (void)!fchown(fd, log_uid, log_gid);
    if (dup2(fd, 2) < 0) {
        close(fd);
        return;
    }
    close(fd);
    log_start += log_size;
    log_size = 0;
    long long *starts, end;
    int n = log_segments(&starts, &end);
    for (int k = 0; k + rotate_keep < n; k++) {
        snprintf(old, sizeof old, "%s.%lld", log_path, starts[k]);
        unlink(old);
    }
    free(starts);
}

/* Copy what the pipe holds to the log (fd 2). Returns 0 at end of file, 1 otherwise. */
static int pump(int pipe_r) {
    char buf[65536];
    for (;;) {
        ssize_t n = read(pipe_r, buf, sizeof buf);
        if (n == 0) return 0;
        if (n < 0) return errno == EINTR ? 1 : (errno == EAGAIN ? 1 : 0);
        if (log_full) continue;  /* past the limit: drain, so the job is never blocked */
        ssize_t keep = n;
        if (log_max > 0 && log_written + keep > log_max) keep = log_max - log_written;
        for (ssize_t off = 0; off < keep;) {
            ssize_t piece = keep - off;  /* up to where the log rotates */
            int rotating = log_path && rotate_at > 0;
            if (rotating && piece > rotate_at - log_size)
                piece = rotate_at - log_size > 0 ? rotate_at - log_size : 1;
            ssize_t w = write(2, buf + off, piece);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break; /* the disk refuses: output is lost, the job goes on */
            off += w;
            log_size += w;
            if (rotating && log_size >= rotate_at) log_rotate();
        }
        log_written += keep;
        if (log_max > 0 && keep < n) {
            log_full = 1;
            dprintf(2, "\n[axcenter] the job's output reached the log limit of %lld bytes: "
                       "the job is stopped\n", log_max);
        }
    }
}

/* ---- the job --------------------------------------------------------------------- */

struct identity {
    uid_t uid;
    gid_t gid;
    gid_t groups[64];
    int ngroups;
    int set;
};

/* In the forked child: report STAGE and errno to the supervisor, and end. */
static void child_fail(int fd, int stage) {
    int msg[2] = {stage, errno ? errno : EINVAL};
    (void)!write(fd, msg, sizeof msg);
    _exit(127);
}

enum { S_CGROUP = 1, S_NAMESPACE, S_IDENTITY, S_WORKDIR, S_OUTPUT, S_EXEC };
static const char *STAGES[] = {"", "cgroup", "namespace", "identity", "workdir", "output", "exec"};

/* Open FILE as the job's user (we are that user by now) onto TARGET. */
static int open_onto(const char *file, int append, int target) {
    int flags = O_WRONLY | O_CREAT | O_NOCTTY | (append ? O_APPEND : O_TRUNC);
    int fd = open(file, flags, 0640);
    if (fd < 0) return -1;
    if (fd != target && dup2(fd, target) < 0) return -1;
    if (fd != target) close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        dprintf(2, "usage: axc-supervisor RUN_DIR [OPTIONS] -- COMMAND...\n");
        return 2;
    }
    run_dir = argv[1];
    const char *workdir = "/";
    long long limit_s = 0, grace_ms = 10000, memory = 0, cpu_milli = 0, pids = 0;
    char *devices = NULL;
    int private_proc = 0, append = 0, step_mode = 0;
    const char *out_file = NULL, *err_file = NULL;
    struct identity who = {0};
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "w:t:k:u:g:G:c:m:C:p:d:L:l:r:K:Po:e:aS")) != -1) {
        switch (opt) {
        case 'w': workdir = optarg; break;
        case 't': limit_s = atoll(optarg); break;
        case 'k': grace_ms = atoll(optarg); break;
        case 'u': who.uid = (uid_t)atoll(optarg); who.set = 1; break;
        case 'g': who.gid = (gid_t)atoll(optarg); break;
        case 'G':
            for (char *g = strtok(optarg, ","); g && who.ngroups < 64; g = strtok(NULL, ","))
                who.groups[who.ngroups++] = (gid_t)atoll(g);
            break;
        case 'c': cg_name = optarg; break;
        case 'm': memory = atoll(optarg); break;
        case 'C': cpu_milli = atoll(optarg); break;
        case 'p': pids = atoll(optarg); break;
        case 'd': devices = optarg; break;
        case 'L': log_max = atoll(optarg); break;
        case 'l': log_path = optarg; break;
        case 'r': rotate_at = atoll(optarg); break;
        case 'K': rotate_keep = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
        case 'P': private_proc = 1; break;
        case 'o': out_file = optarg; break;
        case 'e': err_file = optarg; break;
        case 'a': append = 1; break;
        case 'S': step_mode = 1; break;
        default: return 2;
        }
    }
    if (optind >= argc) {
        dprintf(2, "axc-supervisor: no command\n");
        return 2;
    }
    char **command = argv + optind;
    if (who.set && (who.uid == 0 || who.gid == 0)) {
        dprintf(2, "axc-supervisor: refusing to run a job as root\n");
        return 2;
    }
    if (who.set) {  /* a rotated log's new file is the job's user's, as the first was */
        log_owned = 1;
        log_uid = who.uid;
        log_gid = who.gid;
    }
    log_locate();

    /* A session of our own: a signal to the service's group or terminal never reaches
     * us, and when the service dies we go on (reparented to init or a subreaper). */
    if (setsid() < 0) die("setsid");
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t self = getpid();

    sigset_t handled, old;
    sigemptyset(&handled);
    sigaddset(&handled, SIGCHLD);
    sigaddset(&handled, SIGUSR1);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    sigprocmask(SIG_BLOCK, &handled, &old);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) die("signalfd");
    /* a step lives as long as whoever asked for it (as a step ends with its srun) */
    if (step_mode && (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() == 1)) {
        dprintf(2, "axc-supervisor: the step's caller is gone\n");
        return 2;
    }

    char line[256];
    if (cg_name && step_mode) {  /* the run's group: joined by the step, as it is */
        struct stat st;
        char dir[PATH_MAX];
        cg_v2 = stat(CGROOT "/cgroup.controllers", &st) == 0;
        snprintf(dir, sizeof dir, HYBRID "/%s", cg_name);
        cg_hybrid = !cg_v2 && stat(dir, &st) == 0;
    } else if (cg_name && cg_create(memory, cpu_milli, pids, devices) != 0) {
        int e = errno;
        cg_remove();
        snprintf(line, sizeof line, "0 %lld none launch_failed:cgroup:%d %lld %lld %lld\n",
                 now_ns(), e, limit_s, memory >> 20, log_max);
        if (write_record("exit", line, 1) != 0) die("write exit record");
        dprintf(1, "F %s %d\n", STAGES[S_CGROUP], e);
        return 0;
    }

    /* the job's output: a pipe we copy to the log, when the log has a limit or rotates */
    int out[2] = {-1, -1};
    if ((log_max > 0 || (log_path && rotate_at > 0)) && pipe2(out, O_CLOEXEC) != 0)
        die("pipe");

    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) die("pipe");
    long long started = now_ns();
    pid_t job = fork();
    if (job < 0) die("fork");
    if (job == 0) {
        /* the job: its own session and group, confined, as its user, dies with us */
        int report = errpipe[1];
        errno = 0;
        setsid();
        signal(SIGPIPE, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (cg_name && cg_join(getpid()) != 0) child_fail(report, S_CGROUP);
        if (private_proc) {
            /* a mount namespace whose /proc shows the job only its own user's processes */
            if (unshare(CLONE_NEWNS) != 0) child_fail(report, S_NAMESPACE);
            if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
                child_fail(report, S_NAMESPACE);
            if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "hidepid=invisible") != 0 &&
                mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") != 0)
                child_fail(report, S_NAMESPACE);
        }
        if (who.set) {
            if (setgroups(who.ngroups, who.groups) != 0) child_fail(report, S_IDENTITY);
            if (setgid(who.gid) != 0 || setuid(who.uid) != 0) child_fail(report, S_IDENTITY);
            if (setuid(0) == 0) {  /* never: the switch must be for good */
                errno = EPERM;
                child_fail(report, S_IDENTITY);
            }
        }
        /* after the identity switch, which clears it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != self) _exit(127);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0) child_fail(report, S_EXEC);
        if (devnull > 2) close(devnull);
        if (out[1] >= 0) {
            if (dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0) child_fail(report, S_EXEC);
        } else if (dup2(2, 1) < 0) {
            child_fail(report, S_EXEC);
        }
        if (chdir(workdir) != 0) child_fail(report, S_WORKDIR);
        if (out_file && open_onto(out_file, append, 1) != 0) child_fail(report, S_OUTPUT);
        if (out_file && !err_file && dup2(1, 2) < 0) child_fail(report, S_OUTPUT);
        if (err_file && open_onto(err_file, append, 2) != 0) child_fail(report, S_OUTPUT);
        execvp(command[0], command);
        child_fail(report, S_EXEC);
    }
    close(errpipe[1]);
    if (out[1] >= 0) close(out[1]);
    int msg[2] = {0, 0};
    ssize_t got;
    do {
        got = read(errpipe[0], msg, sizeof msg);
    } while (got < 0 && errno == EINTR);
    close(errpipe[0]);
    if (got == (ssize_t)sizeof msg) {
        /* the job never ran */
        waitpid(job, NULL, 0);
        if (cg_name && !step_mode) {
            cg_kill_all();
            cg_remove();
        }
        int stage = msg[0] > 0 && msg[0] <= S_EXEC ? msg[0] : S_EXEC;
        snprintf(line, sizeof line, "0 %lld none launch_failed:%s:%d %lld %lld %lld\n", now_ns(),
                 STAGES[stage], msg[1], limit_s, memory >> 20, log_max);
        if (write_record("exit", line, 1) != 0) die("write exit record");
        dprintf(1, "F %s %d\n", STAGES[stage], msg[1]);
        return 0;
    }
    snprintf(line, sizeof line, "%d %d %lld\n", self, job, started);
    if (write_record("started", line, 0) != 0) {
        kill(-job, SIGKILL);
        die("write started record");
    }
    dprintf(1, "R %d %d %lld\n", self, job, started);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
        dup2(devnull, 1);
        close(devnull);
    }
    if (out[0] >= 0) fcntl(out[0], F_SETFL, O_NONBLOCK);

    long long deadline = limit_s > 0 ? mono_ms() + limit_s * 1000LL : -1;
    long long kill_at = -1;
    int term_sent = 0, kill_sent = 0;
    int status = 0;
    for (;;) {
        long long now = mono_ms();
        if (strcmp(cause, "none") == 0 && deadline >= 0 && now >= deadline) {
            set_cause("time_limit");
            kill_at = now + grace_ms;
        }
        if (log_full && strcmp(cause, "none") == 0) {
            set_cause("log_limit");
            kill_at = now + grace_ms;
        }
        if (kill_at >= 0 && !term_sent) {
            term_sent = 1;
            kill(-job, SIGTERM);
        }
        if (kill_at >= 0 && !kill_sent && now >= kill_at) {
            kill_sent = 1;
            kill(-job, SIGKILL);
        }
        /* has the leader exited? look without reaping: its group id stays ours */
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_PID, job, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == job)
            break;
        long long next = -1;
        if (strcmp(cause, "none") == 0 && deadline >= 0) next = deadline;
        if (kill_at >= 0 && !kill_sent && (next < 0 || kill_at < next)) next = kill_at;
        int timeout = -1;
        if (next >= 0) {
            long long ms = next - mono_ms();
            timeout = ms < 0 ? 0 : (ms > 3600000 ? 3600000 : (int)ms);
        }
        struct pollfd fds[2] = {{sfd, POLLIN, 0}, {out[0], POLLIN, 0}};
        if (poll(fds, out[0] >= 0 ? 2 : 1, timeout) < 0 && errno != EINTR) die("poll");
        if (out[0] >= 0 && fds[1].revents && pump(out[0]) == 0) {
            close(out[0]);  /* every writer closed it; the leader's exit comes by SIGCHLD */
            out[0] = -1;
        }
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            int sig = (int)si.ssi_signo;
            if (sig != SIGUSR1 && sig != SIGTERM && sig != SIGINT) continue;
            char reason[16] = "shutdown";
            long long grace = grace_ms;
            if (sig == SIGUSR1) {
                grace = read_stop(reason, sizeof reason);
                if (grace < 0) continue; /* no readable request: ignore */
            }
            set_cause(reason);
            long long at = mono_ms() + grace;
            if (kill_at < 0 || at < kill_at) kill_at = at;
            if (!term_sent) {
                term_sent = 1;
                kill(-job, SIGTERM);
            }
            if (grace == 0 && !kill_sent) {
                kill_sent = 1;
                kill(-job, SIGKILL);
            }
        }
    }
    /* the leader is a zombie: its group id cannot have been reused. End the rest: the
     * group, everything in the control group, every descendant; the run ends then. */
    kill(-job, SIGKILL);
    waitpid(job, &status, 0);
    if (cg_name && !step_mode) cg_kill_all();
    kill_descendants(self);
    while (out[0] >= 0 && pump(out[0]) != 0) {
        /* every writer is dead: what is left in the pipe, then end of file */
        struct pollfd pf = {out[0], POLLIN, 0};
        if (poll(&pf, 1, 1000) <= 0) break;
    }
    long long ended = now_ns();
    if (cg_name && !step_mode) {
        if (cg_oom_killed()) set_cause("oom");
        cg_remove();
    }
    if (log_full) set_cause("log_limit");
    char outcome[48];
    if (WIFEXITED(status))
        snprintf(outcome, sizeof outcome, "exited:%d", WEXITSTATUS(status));
    else
        snprintf(outcome, sizeof outcome, "signaled:%d", WTERMSIG(status));
    snprintf(line, sizeof line, "%lld %lld %s %s %lld %lld %lld\n", started, ended, cause,
             outcome, limit_s, memory >> 20, log_max);
    if (write_record("exit", line, 1) != 0) die("write exit record");
    return 0;
}
