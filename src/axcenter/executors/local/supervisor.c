/*
 * axc-supervisor: the per-run supervisor of axcenter's local engine.
 *
 * As slurmstepd, conmon or containerd-shim do, one small process owns each run, outside
 * the service's process tree, so that stopping, upgrading or killing `axc up` leaves the
 * job running and its end recorded. It:
 *
 *   - leads a session of its own, so that it outlives the service (which is its parent
 *     until it dies; init, or the nearest subreaper, after that);
 *   - starts the job in a session and process group of its own, stdout and stderr on the
 *     log it was given as its own stderr, stdin on /dev/null, the job's leader killed if
 *     the supervisor dies (PR_SET_PDEATHSIG);
 *   - is the subreaper of everything the job spawns, so a process that escapes the job's
 *     group (setsid, double fork) is still its descendant and is killed at the end;
 *   - enforces the time limit (SIGTERM to the group, SIGKILL after the grace period);
 *   - takes stop requests: the service writes RUN_DIR/stop ("REASON GRACE_MS") and sends
 *     SIGUSR1; the first cause wins, a later request may only shorten the grace;
 *   - when the leader exits, kills what is left of the group and of its descendants, and
 *     writes RUN_DIR/exit durably (fsync of the file and of the directory) before it exits.
 *
 * Records (written to a temporary name, then renamed: a reader sees all or nothing):
 *   RUN_DIR/started  "SUP_PID JOB_PID STARTED_NS\n"
 *   RUN_DIR/exit     "STARTED_NS ENDED_NS CAUSE STATUS TIME_LIMIT_S\n"
 *       CAUSE  none | cancel | preempt | shutdown | time_limit
 *       STATUS exited:CODE | signaled:SIGNO | launch_failed:ERRNO
 *
 * On its stdout (a pipe to the service that asked for the run) it writes
 * "R SUP_PID JOB_PID STARTED_NS\n" once the job runs, or "F ERRNO\n" if the job could not
 * be started, then closes it. The policy (outcomes, messages, money) is the service's:
 * this program only records facts.
 *
 * usage: axc-supervisor RUN_DIR WORKDIR TIME_LIMIT_S GRACE_MS -- COMMAND [ARG...]
 * The job's environment is the supervisor's own.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


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

/* Write NAME in the run directory atomically; durably if SYNC. */
static int write_record(const char *name, const char *text, int sync) {
    char tmp[PATH_MAX], path[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", run_dir, name);
    snprintf(path, sizeof path, "%s/%s", run_dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
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

int main(int argc, char **argv) {
    if (argc < 7 || strcmp(argv[5], "--") != 0) {
        dprintf(2, "usage: axc-supervisor RUN_DIR WORKDIR TIME_LIMIT_S GRACE_MS -- COMMAND...\n");
        return 2;
    }
    run_dir = argv[1];
    const char *workdir = argv[2];
    long long limit_s = atoll(argv[3]);
    long long grace_ms = atoll(argv[4]);
    char **command = argv + 6;

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

    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) die("pipe");
    long long started = now_ns();
    pid_t job = fork();
    if (job < 0) die("fork");
    if (job == 0) {
        /* the job: its own session and group, dies with us, default signals */
        setsid();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != self) _exit(127);
        signal(SIGPIPE, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        int err = 0;
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(2, 1) < 0) err = errno;
        if (!err && chdir(workdir) != 0) err = errno ? errno : ENOENT;
        if (!err) {
            if (devnull > 2) close(devnull);
            execvp(command[0], command);
            err = errno;
        }
        (void)!write(errpipe[1], &err, sizeof err);
        _exit(127);
    }
    close(errpipe[1]);
    int err = 0;
    ssize_t got;
    do {
        got = read(errpipe[0], &err, sizeof err);
    } while (got < 0 && errno == EINTR);
    close(errpipe[0]);
    char line[256];
    if (got == (ssize_t)sizeof err) {
        /* exec failed: the job never ran */
        waitpid(job, NULL, 0);
        snprintf(line, sizeof line, "0 %lld none launch_failed:%d %lld\n", now_ns(), err, limit_s);
        if (write_record("exit", line, 1) != 0) die("write exit record");
        dprintf(1, "F %d\n", err);
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

    long long deadline = limit_s > 0 ? mono_ms() + limit_s * 1000LL : -1;
    long long kill_at = -1;
    int term_sent = 0, kill_sent = 0;
    int status = 0;
    for (;;) {
        long long now = mono_ms();
        if (strcmp(cause, "none") == 0 && deadline >= 0 && now >= deadline) {
            snprintf(cause, sizeof cause, "time_limit");
            kill_at = now + grace_ms;
            if (!term_sent) {
                term_sent = 1;
                kill(-job, SIGTERM);
            }
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
        struct timespec wait_for = {3600, 0};
        if (next >= 0) {
            long long ms = next - mono_ms();
            if (ms < 0) ms = 0;
            wait_for.tv_sec = ms / 1000;
            wait_for.tv_nsec = (ms % 1000) * 1000000L;
        }
        int sig = sigtimedwait(&handled, NULL, &wait_for);
        if (sig == SIGUSR1 || sig == SIGTERM || sig == SIGINT) {
            char reason[16] = "shutdown";
            long long grace = grace_ms;
            if (sig == SIGUSR1) {
                grace = read_stop(reason, sizeof reason);
                if (grace < 0) continue; /* no readable request: ignore */
            }
            if (strcmp(cause, "none") == 0) snprintf(cause, sizeof cause, "%s", reason);
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
    /* the leader is a zombie: its group id cannot have been reused. End the rest. */
    kill(-job, SIGKILL);
    waitpid(job, &status, 0);
    long long ended = now_ns();
    kill_descendants(self);
    char outcome[48];
    if (WIFEXITED(status))
        snprintf(outcome, sizeof outcome, "exited:%d", WEXITSTATUS(status));
    else
        snprintf(outcome, sizeof outcome, "signaled:%d", WTERMSIG(status));
    snprintf(line, sizeof line, "%lld %lld %s %s %lld\n", started, ended, cause, outcome, limit_s);
    if (write_record("exit", line, 1) != 0) die("write exit record");
    return 0;
}
