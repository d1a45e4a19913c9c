"""The service's refusals in the reader's language, gettext-style.

A use case raises a ``ServiceError`` with its English template (the message id) and the
template's parameters (``service/errors.py``); ``MESSAGES`` gives each template in Korean,
with the same ``{placeholders}``. ``detail`` says an error in the page's language:
English is the service's own sentence; Korean fills the Korean template, saying the
parameters a reader would otherwise see as code in words: states, stages and roles
through the catalog's vocabularies (``label``), won amounts with ``won``, counts and
durations in Korean, and the English words a message takes as a parameter (a verb, an
operator's action) through ``WORDS``. InvalidInput's field is named as the form labels it.
``tests/web/test_i18n.py`` walks every ``raise`` of the service and fails on a template
this file lacks, or whose placeholders differ.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Final

from axcenter.service.errors import Count, Forbidden, InvalidInput, ServiceError, Span
from axcenter.web.i18n import CATALOG, duration, label, translate, won
from axcenter.web.problems import LABELS

__all__ = ["MESSAGES", "WORDS", "detail", "placeholders"]

#: English template -> Korean template
MESSAGES: Final[dict[str, str]] = {
    "no {thing} {ref!r}": "{thing} {ref!r}이(가) 없습니다",
    "your role ({role}) may not {phrase} {label}": (
        "현재 역할({role})로는 {label}에 대해 {phrase} 권한이 없습니다"
    ),
    "no allocation {allocation_id!r}": "배정 {allocation_id!r}이(가) 없습니다",
    "request {id} is {stage}: it cannot be {verb}": (
        "배정 신청 {id}은(는) {stage} 단계입니다. {verb}할 수 없습니다"
    ),
    "grant at least one GPU type (or reject the request)": (
        "GPU 종류를 하나 이상 배정하세요 (또는 신청을 반려하세요)"
    ),
    "say why the request is {verb}": "신청을 {verb}하는 사유를 적어 주세요",
    "{ref!r} is no active reviewer": "{ref!r}은(는) 활동 중인 심사위원이 아닙니다",
    "{ref!r} belongs to the applicant's organization": "{ref!r}은(는) 신청 기관 소속입니다",
    "{ref!r} declared a conflict of interest with the applicant": (
        "{ref!r}은(는) 신청 기관과의 이해충돌을 신고했습니다"
    ),
    "this program's rubric scores each criterion: {keys}": (
        "이 지원사업의 심사 기준은 항목별로 점수를 매깁니다: {keys}"
    ),
    "this program has no rubric: give one score (1..5)": (
        "이 지원사업에는 심사 기준표가 없습니다. 점수 하나(1~5)를 주세요"
    ),
    "must be between 1 and 5": "1에서 5 사이여야 합니다",
    "the request asks for no {gpu_type}": "이 신청은 {gpu_type}을(를) 요청하지 않았습니다",
    "{hours} GPU-hours is more than the {asked} requested": (
        "{hours} GPU 시간은 요청한 {asked}보다 많습니다"
    ),
    "a {kind} grants no GPU-hours": "{kind} 신청은 GPU 시간을 배정하지 않습니다",
    "{ends_at} does not leave a window": "{ends_at}(으)로는 사용 기간이 남지 않습니다",
    "{detail}": "{detail}",
    "later than the requested {ends_at}": "요청한 종료일 {ends_at}보다 늦습니다",
    "no array {array_id!r}": "배열 작업 {array_id!r}이(가) 없습니다",
    "you may not cancel array {array_id}: it belongs to another user": (
        "배열 작업 {array_id}을(를) 취소할 수 없습니다. 다른 사용자의 작업입니다"
    ),
    "the file has no name": "파일 이름이 없습니다",
    "{name}: files of this type are not accepted (accepted: {accepted})": (
        "{name}: 이 형식의 파일은 받지 않습니다 (허용 형식: {accepted})"
    ),
    "{name} is not text: it holds NUL bytes": (
        "{name}은(는) 텍스트가 아닙니다. NUL 바이트가 들어 있습니다"
    ),
    (
        "request {request_id} is {stage}: files are attached while it is submitted (before "
        "review) or returned for changes"
    ): (
        "배정 신청 {request_id}은(는) {stage} 단계입니다. 파일은 접수(심사 전) 또는 보완 "
        "요청 단계에서만 첨부할 수 있습니다"
    ),
    "no request {request_id!r}": "배정 신청 {request_id!r}이(가) 없습니다",
    "request {request_id} has no attachment {attachment_id!r}": (
        "배정 신청 {request_id}에 첨부 파일 {attachment_id!r}이(가) 없습니다"
    ),
    "the file of attachment {attachment_id} is missing on the server": (
        "첨부 파일 {attachment_id}의 파일이 서버에 없습니다"
    ),
    "{name} is not a {content_type} file: its content says otherwise": (
        "{name}은(는) {content_type} 파일이 아닙니다. 내용이 다른 형식입니다"
    ),
    "request {request_id} has {MAX_PER_REQUEST} files already: remove one first": (
        "배정 신청 {request_id}에 이미 파일이 {MAX_PER_REQUEST}개 있습니다. 먼저 하나를 삭제하세요"
    ),
    "{name} is not UTF-8 text": "{name}은(는) UTF-8 텍스트가 아닙니다",
    "{name} is empty": "{name}이(가) 비어 있습니다",
    "{name} is larger than the {mib:g} MiB a file may be": (
        "{name}은(는) 파일 크기 한도 {mib:g} MiB보다 큽니다"
    ),
    "the period must start before it ends": "기간의 시작이 끝보다 앞서야 합니다",
    "must be between 1 and {MAX_ACCOUNTS}": "1에서 {MAX_ACCOUNTS} 사이여야 합니다",
    "no job {job_id!r}": "작업 {job_id!r}이(가) 없습니다",
    "no job {missing!r} to depend on": "선행 작업으로 지정한 {missing!r}이(가) 없습니다",
    "only operators and program managers may see a program's evidence": (
        "지원사업의 증빙 자료는 운영자와 사업 관리자만 볼 수 있습니다"
    ),
    "must be after since": "시작 시각(since) 이후여야 합니다",
    "must be 1 or more": "1 이상이어야 합니다",
    "no price for {missing} in the price book: set one (axc price set) before granting it": (
        "가격표에 {missing}의 가격이 없습니다. 배정하기 전에 가격을 정하세요 (axc price set)"
    ),
    (
        "program {program!r} would exceed its budget: {budget_won:,} won, {granted_won:,} "
        "already granted, this grant {extra_won:,} (total {total_won:,}, {over_won:,} over)"
    ): (
        "지원사업 {program!r}의 예산을 넘습니다: 예산 {budget_won}, 기배정 {granted_won}, "
        "이번 배정 {extra_won} (합계 {total_won}, {over_won} 초과)"
    ),
    (
        "allocation {allocation} already ends at {ends_at:%Y-%m-%d %H:%M} UTC: an extension "
        "must end later"
    ): (
        "배정 {allocation}은(는) 이미 {ends_at:%Y-%m-%d %H:%M} UTC에 끝납니다. 기간 연장은 "
        "그보다 늦게 끝나야 합니다"
    ),
    "must be between 1 and {MAX_HOURS}": "1에서 {MAX_HOURS} 사이여야 합니다",
    "must be between 1 and {MAX_BUCKETS}": "1에서 {MAX_BUCKETS} 사이여야 합니다",
    "nothing to change: give name, time_limit_s or priority": (
        "바꿀 내용이 없습니다. name, time_limit_s, priority 중 하나를 주세요"
    ),
    "{limit} s is above the center's maximum of {max_time_limit_s} s": (
        "{limit}초는 센터 최대 시간 제한 {max_time_limit_s}초를 넘습니다"
    ),
    "you may not {verb} job {job_id}: it belongs to another user": (
        "작업 {job_id}을(를) {verb}할 수 없습니다. 다른 사용자의 작업입니다"
    ),
    "job {job_id} is no longer pending ({state}): only a pending job can be {done_to}": (
        "작업 {job_id}은(는) 더 이상 대기 중이 아닙니다({state}). 대기 중인 작업만 "
        "{done_to}할 수 있습니다"
    ),
    "job {job_id} has just started: only a pending job can be {done_to}": (
        "작업 {job_id}이(가) 방금 시작되었습니다. 대기 중인 작업만 {done_to}할 수 있습니다"
    ),
    "you may not requeue job {job_id}: it belongs to another user": (
        "작업 {job_id}을(를) 다시 대기열에 넣을 수 없습니다. 다른 사용자의 작업입니다"
    ),
    (
        "job {job_id} is pending already: only a job that ran or ended can be requeued (`axc "
        "hold` keeps a pending job from starting)"
    ): (
        "작업 {job_id}은(는) 이미 대기 중입니다. 실행되었거나 종료된 작업만 다시 대기열에 "
        "넣을 수 있습니다 (대기 중인 작업을 멈추려면 `axc hold`)"
    ),
    "job {job_id} is being requeued already (preempted)": (
        "작업 {job_id}은(는) 이미 다시 대기열에 들어가는 중입니다 (선점됨)"
    ),
    "job {job_id}'s owner is no longer active: it cannot run again": (
        "작업 {job_id}의 소유자가 더 이상 활성 사용자가 아닙니다. 다시 실행할 수 없습니다"
    ),
    "job {job_id} changed meanwhile: requeue it again": (
        "그 사이 작업 {job_id}이(가) 바뀌었습니다. 다시 대기열에 넣어 주세요"
    ),
    "job {job_id} ended meanwhile: requeue it again": (
        "그 사이 작업 {job_id}이(가) 종료되었습니다. 다시 대기열에 넣어 주세요"
    ),
    "no free uid left in this center's range {uid_range}: an operator widens it": (
        "이 센터의 uid 범위 {uid_range}에 남은 uid가 없습니다. 운영자가 범위를 넓혀야 합니다"
    ),
    "the unix group {name} exists with another gid than {gid}": (
        "유닉스 그룹 {name}이(가) {gid}이(가) 아닌 다른 gid로 이미 있습니다"
    ),
    "must be an absolute path, got {requested!r}": "절대 경로여야 합니다. 입력값: {requested!r}",
    (
        "{requested} is not a directory on this center: create it first (as with sbatch "
        "--chdir, a missing directory is an error)"
    ): (
        "{requested}은(는) 이 센터에 있는 디렉터리가 아닙니다. 먼저 만드세요 (sbatch "
        "--chdir처럼 없는 디렉터리는 오류입니다)"
    ),
    "{requested} is outside the directories your jobs may use ({roots})": (
        "{requested}은(는) 작업이 쓸 수 있는 디렉터리({roots}) 밖에 있습니다"
    ),
    "{account} is root or a system account (uid {pw_uid}): never": (
        "{account}은(는) root 또는 시스템 계정(uid {pw_uid})입니다. 사용할 수 없습니다"
    ),
    "cannot create the unix identity ({argv}: {stderr})": (
        "유닉스 계정을 만들 수 없습니다 ({argv}: {stderr})"
    ),
    "the unix account {name} exists with another uid than {uid}": (
        "유닉스 계정 {name}이(가) {uid}이(가) 아닌 다른 uid로 이미 있습니다"
    ),
    "this center runs in single-user mode: only the jobs of {single_user} run here": (
        "이 센터는 단일 사용자 모드입니다. {single_user}의 작업만 실행됩니다"
    ),
    (
        "{user} has no unix account on this center: an operator maps one (axc users map "
        "{user} ACCOUNT)"
    ): (
        "{user}에게 이 센터의 유닉스 계정이 없습니다. 운영자가 연결해야 합니다 (axc users "
        "map {user} ACCOUNT)"
    ),
    "no unix account named {account!r} on this host": (
        "이 호스트에 {account!r}(이)라는 유닉스 계정이 없습니다"
    ),
    "{account} already runs another user's jobs": (
        "{account}은(는) 이미 다른 사용자의 작업을 실행합니다"
    ),
    (
        "the unix account {name} exists and is not axcenter's (uid {pw_uid}): an operator "
        "maps it (axc users map) or removes it"
    ): (
        "유닉스 계정 {name}이(가) 이미 있으며 axcenter의 계정이 아닙니다(uid {pw_uid}). "
        "운영자가 연결(axc users map)하거나 삭제해야 합니다"
    ),
    "the unix group {name} exists and is not axcenter's": (
        "유닉스 그룹 {name}이(가) 이미 있으며 axcenter의 그룹이 아닙니다"
    ),
    "cannot create {path}: {strerror}": "{path}을(를) 만들 수 없습니다: {strerror}",
    (
        "{project} has no active allocation, and this center runs no GPU job without one "
        "(its policy: unallocated_gpu_jobs=refuse): ask for GPU-hours with `axc alloc "
        "request`, or submit with --gpus 0"
    ): (
        "과제 {project}에 사용 중인 배정이 없고, 이 센터는 배정 없는 GPU 작업을 실행하지 "
        "않습니다 (정책: unallocated_gpu_jobs=refuse). `axc alloc request`로 GPU 시간을 "
        "신청하거나 --gpus 0으로 제출하세요"
    ),
    "the program to run is empty": "실행할 프로그램이 비어 있습니다",
    "arguments may not contain NUL bytes": "인자에 NUL 바이트를 넣을 수 없습니다",
    "{time_limit} is above the center's maximum of {max_time_limit_s}": (
        "{time_limit}은(는) 센터 최대 시간 제한 {max_time_limit_s}을(를) 넘습니다"
    ),
    (
        "whole nodes of different sizes could be chosen ({found}): name one --gpu-type whose "
        "nodes are all alike, or ask for GPUs, CPUs and memory instead"
    ): (
        "크기가 다른 노드가 통째로 선택될 수 있습니다({found}). 노드가 모두 같은 --gpu-type "
        "하나를 지정하거나, 대신 GPU, CPU, 메모리를 요청하세요"
    ),
    "no node has {cpus} CPUs": "CPU가 {cpus}개인 노드가 없습니다",
    "no node has {memory} MB of memory": "메모리가 {memory} MB인 노드가 없습니다",
    "no task {index} in array {array!r}": "배열 작업 {array!r}에 태스크 {index}이(가) 없습니다",
    "must be 0 or more": "0 이상이어야 합니다",
    "no project given and you belong to several (or none): name one with --project": (
        "과제를 지정하지 않았고, 소속 과제가 여러 개(또는 없음)입니다. --project로 하나를 "
        "지정하세요"
    ),
    "unknown project {ref!r}": "알 수 없는 과제 {ref!r}",
    "{key} is set by axcenter and cannot be overridden": (
        "{key}은(는) axcenter가 설정하므로 바꿀 수 없습니다"
    ),
    "unknown GPU type {gpu_type!r} (this center has {known})": (
        "알 수 없는 GPU 종류 {gpu_type!r} (이 센터의 종류: {known})"
    ),
    "{gpus_per_node} per node requested, but the largest node of the accepted types has {most}": (
        "노드당 GPU {gpus_per_node}개를 요청했지만, 허용한 종류 중 가장 큰 노드의 GPU는 "
        "{most}개입니다"
    ),
    "{gpus_per_node} per node requested, but the largest node has {most}": (
        "노드당 GPU {gpus_per_node}개를 요청했지만, 가장 큰 노드의 GPU는 {most}개입니다"
    ),
    (
        "{nodes} with {gpus_per_node} each requested, but {most_nodes} of one GPU type at "
        "most have that many"
    ): (
        "GPU {gpus_per_node}개씩 노드 {nodes}개를 요청했지만, 한 GPU 종류에서 그만큼 가진 "
        "노드는 최대 {most_nodes}개입니다"
    ),
    "{nodes} requested, the center has {center_nodes}": (
        "노드 {nodes}개를 요청했지만, 센터의 노드는 {center_nodes}개입니다"
    ),
    "unknown state {state!r}": "알 수 없는 상태 {state!r}",
    "you may not cancel job {job_id}: it belongs to another user": (
        "작업 {job_id}을(를) 취소할 수 없습니다. 다른 사용자의 작업입니다"
    ),
    "job {job_id} already ended: {state}": "작업 {job_id}은(는) 이미 종료되었습니다: {state}",
    "you may not report a checkpoint of job {job_id}: not your job": (
        "작업 {job_id}의 체크포인트를 보고할 수 없습니다. 본인의 작업이 아닙니다"
    ),
    "job {job_id} is {state}: only a running job checkpoints": (
        "작업 {job_id}은(는) {state} 상태입니다. 실행 중인 작업만 체크포인트를 남깁니다"
    ),
    "you may not resubmit job {job_id}: it belongs to another user": (
        "작업 {job_id}을(를) 다시 제출할 수 없습니다. 다른 사용자의 작업입니다"
    ),
    "the log of job {job_id} belongs to another organization": (
        "작업 {job_id}의 로그는 다른 기관의 것입니다"
    ),
    "job {job_id} has no log: it was submitted with output=discard": (
        "작업 {job_id}에는 로그가 없습니다. output=discard로 제출되었습니다"
    ),
    "no kind {unknown!r} (kinds: {KINDS})": "알림 종류 {unknown!r}이(가) 없습니다 (종류: {KINDS})",
    "reviewers may not see how grants are used": "심사위원은 배정 사용 현황을 볼 수 없습니다",
    "say how many GPU-hours to take back (or the tranches)": (
        "회수할 GPU 시간(또는 단계)을 지정하세요"
    ),
    "allocation {allocation} is {status}": "배정 {allocation}은(는) {status} 상태입니다",
    "allocation {allocation} is {status}: not suspended": (
        "배정 {allocation}은(는) {status} 상태라 중지하지 않았습니다"
    ),
    "allocation {allocation} is {status}: not resumed": (
        "배정 {allocation}은(는) {status} 상태라 재개하지 않았습니다"
    ),
    "allocation {allocation} grants no {gpu_type}": (
        "배정 {allocation}에는 {gpu_type} 배정이 없습니다"
    ),
    (
        "allocation {allocation} has {left_hours:,} {gpu_type} GPU-hours left (charged and "
        "held ones stay): {hours:,} cannot be taken back"
    ): (
        "배정 {allocation}에 남은 {gpu_type} GPU 시간은 {left_hours:,}입니다 (과금·예치분은 "
        "남습니다). {hours:,}시간은 회수할 수 없습니다"
    ),
    "no organization {ref!r}": "기관 {ref!r}이(가) 없습니다",
    "no user {ref!r}": "사용자 {ref!r}이(가) 없습니다",
    "organization {name!r} already exists": "기관 {name!r}이(가) 이미 있습니다",
    "organization admins create members only, not {role}s": (
        "기관 관리자는 구성원만 만들 수 있습니다 ({role}은(는) 안 됩니다)"
    ),
    "user {name!r} already exists": "사용자 {name!r}이(가) 이미 있습니다",
    "organization admins manage the tokens of members only": (
        "기관 관리자는 구성원의 토큰만 관리할 수 있습니다"
    ),
    "unknown organization {ref!r}": "알 수 없는 기관 {ref!r}",
    "unknown user {ref!r}": "알 수 없는 사용자 {ref!r}",
    "no organization {organization!r}": "기관 {organization!r}이(가) 없습니다",
    "no token {token_id!r}": "토큰 {token_id!r}이(가) 없습니다",
    "token {token_id} is revoked or expired: issue a new one instead": (
        "토큰 {token_id}은(는) 폐기되었거나 만료되었습니다. 새로 발급하세요"
    ),
    "{user} is the last active operator": "{user}은(는) 마지막 남은 활성 운영자입니다",
    "only operators may {action}": "{action}은(는) 운영자만 할 수 있습니다",
    "no project {ref!r}": "과제 {ref!r}이(가) 없습니다",
    "must be between 0 and {most}, got {value}": "0에서 {most} 사이여야 합니다. 입력값: {value}",
    "no cohort {name!r}": "그룹 {name!r}이(가) 없습니다",
    "{ROOT_COHORT!r} is the center's root cohort, which always exists": (
        "{ROOT_COHORT!r}은(는) 센터의 최상위 그룹이라 항상 있습니다"
    ),
    "name at least one node": "노드를 하나 이상 지정하세요",
    "project {project} has no {gpu_type} quota": "과제 {project}에 {gpu_type} 할당량이 없습니다",
    "unknown cohort {name!r}": "알 수 없는 그룹 {name!r}",
    "cohort {name!r} already exists": "그룹 {name!r}이(가) 이미 있습니다",
    "cohort {name!r} is no longer empty": "그룹 {name!r}이(가) 더 이상 비어 있지 않습니다",
    "cohort {name!r} still has projects ({projects}): move them out first": (
        "그룹 {name!r}에 아직 과제가 있습니다({projects}). 먼저 옮기세요"
    ),
    "cohort {name!r} still has cohorts ({children}): move or delete them first": (
        "그룹 {name!r}에 아직 하위 그룹이 있습니다({children}). 먼저 옮기거나 삭제하세요"
    ),
    "cohort {cohort!r} was deleted meanwhile": "그 사이 그룹 {cohort!r}이(가) 삭제되었습니다",
    "cannot clear {unknown}: only {CLEARABLE_LIMITS}": (
        "{unknown}은(는) 해제할 수 없습니다. 해제할 수 있는 항목: {CLEARABLE_LIMITS}"
    ),
    "must be more than 0 (and at most 1000000)": "0보다 커야 합니다 (최대 1000000)",
    "reservation {name!r} already exists": "예약 {name!r}이(가) 이미 있습니다",
    "unknown node {node_name!r} (this center has {cluster})": (
        "알 수 없는 노드 {node_name!r} (이 센터의 노드: {cluster})"
    ),
    "node {node_name!r} is named twice": "노드 {node_name!r}을(를) 두 번 지정했습니다",
    "node {node_name} has no GPUs to reserve": "노드 {node_name}에는 예약할 GPU가 없습니다",
    "overlaps reservation {name!r} ({starts_at} to {ends_at}) on {where}": (
        "{where}에서 예약 {name!r}({starts_at}~{ends_at})과(와) 겹칩니다"
    ),
    "no reservation {name!r}": "예약 {name!r}이(가) 없습니다",
    "cohort {parent!r} is {name!r} or inside it: the move would make a cycle": (
        "그룹 {parent!r}은(는) {name!r} 자신이거나 그 안에 있습니다. 옮기면 순환이 생깁니다"
    ),
    "given a value and also asked to clear it": "값을 주면서 해제도 요청했습니다",
    "must be at least 1 (clear it to remove the cap), got {value}": (
        "1 이상이어야 합니다 (한도를 없애려면 해제하세요). 입력값: {value}"
    ),
    "{end} is not after starts_at {start}": "{end}은(는) 시작 시각 {start} 이후가 아닙니다",
    "{end} is in the past": "{end}은(는) 지난 시각입니다",
    "name at least one device": "장치를 하나 이상 지정하세요",
    "node {node_name} has devices 0..{last}, not {bad}": (
        "노드 {node_name}의 장치는 0..{last}입니다. {bad}은(는) 없습니다"
    ),
    (
        "{nominal} {gpu_type} GPUs guaranteed, but the center has {capacity}: a nominal "
        "quota is a guarantee, give at most {capacity} (borrowing_limit lets a project use "
        "more)"
    ): (
        "{gpu_type} GPU {nominal}개를 보장하려 했지만 센터에는 {capacity}개뿐입니다. 기본 "
        "할당량은 보장이므로 최대 {capacity}개까지 주세요 (더 쓰게 하려면 borrowing_limit)"
    ),
    (
        "{lending_limit} is above the nominal quota {nominal}: a project can only lend what "
        "it is granted"
    ): (
        "{lending_limit}은(는) 기본 할당량 {nominal}보다 큽니다. 과제는 받은 만큼만 빌려줄 "
        "수 있습니다"
    ),
    (
        "no node of this center has GPU type {gpu_type!r} (it has {known}): price the types "
        "the center runs"
    ): (
        "이 센터에는 GPU 종류가 {gpu_type!r}인 노드가 없습니다 (있는 종류: {known}). "
        "센터에서 운영하는 종류에 가격을 정하세요"
    ),
    "no program {ref!r}": "지원사업 {ref!r}이(가) 없습니다",
    "the program must end after it starts": "지원사업의 종료일은 시작일 이후여야 합니다",
    "program {name!r} already exists": "지원사업 {name!r}이(가) 이미 있습니다",
    (
        "{start:%Y-%m-%d %H:%M} UTC is in the past: prices are not retroactive (booked "
        "charges were rated with the price then in force)"
    ): (
        "{start:%Y-%m-%d %H:%M} UTC는 지난 시각입니다. 가격은 소급하지 않습니다 (기록된 "
        "과금은 당시 가격으로 계산되었습니다)"
    ),
    "must not be negative": "음수일 수 없습니다",
    "{gpu_type} already has a price from {start:%Y-%m-%d %H:%M:%S} UTC": (
        "{gpu_type}에는 이미 {start:%Y-%m-%d %H:%M:%S} UTC부터의 가격이 있습니다"
    ),
    "unknown program {ref!r}": "알 수 없는 지원사업 {ref!r}",
    "no price {price_id!r}": "가격 {price_id!r}이(가) 없습니다",
    (
        "price {price_id} ({gpu_type}, {won_per_gpu_hour} won per GPU-hour) has been in "
        "force since {effective_from:%Y-%m-%d %H:%M} UTC and rated charges: set a new price "
        "from now to change it"
    ): (
        "가격 {price_id}({gpu_type}, GPU 시간당 {won_per_gpu_hour})은(는) "
        "{effective_from:%Y-%m-%d %H:%M} UTC부터 적용되어 과금에 쓰였습니다. 바꾸려면 "
        "지금부터 적용할 새 가격을 정하세요"
    ),
    "{gpu_type} already has a price from that moment": (
        "{gpu_type}에는 이미 그 시각부터의 가격이 있습니다"
    ),
    (
        "program {name!r} has already granted {allocated_won:,} won: its budget cannot drop "
        "to {budget_won:,} won"
    ): (
        "지원사업 {name!r}은(는) 이미 {allocated_won}을(를) 배정했습니다. 예산을 "
        "{budget_won}(으)로 줄일 수 없습니다"
    ),
    "unknown user {ref!r} in {org}": "{org}에 알 수 없는 사용자 {ref!r}",
    "project {name!r} already exists": "과제 {name!r}이(가) 이미 있습니다",
    "{user} is already a member of {project}": "{user}은(는) 이미 과제 {project}의 구성원입니다",
    "{user_ref} is not a member of {project}": (
        "{user_ref}은(는) 과제 {project}의 구성원이 아닙니다"
    ),
    "must be between 1 and {MAX_PAGE}": "1에서 {MAX_PAGE} 사이여야 합니다",
    "reviewers may not see usage reports": "심사위원은 사용 보고서를 볼 수 없습니다",
    "a dimension is named twice": "같은 기준을 두 번 지정했습니다",
    "only operators and program managers may see a program's burn-down": (
        "지원사업의 예산 소진 현황은 운영자와 사업 관리자만 볼 수 있습니다"
    ),
    "must be between 1 and 366": "1에서 366 사이여야 합니다",
    "unknown dimension {dim!r} (one of {DIMENSIONS})": (
        "알 수 없는 기준 {dim!r} (가능한 기준: {DIMENSIONS})"
    ),
    "no program {program_ref!r}": "지원사업 {program_ref!r}이(가) 없습니다",
    "your role ({role}) may not allocation.read on {label}": (
        "현재 역할({role})로는 {label}의 배정을 조회할 권한이 없습니다"
    ),
    "a {kind} names the allocation it changes": "{kind} 신청에는 변경할 배정을 지정해야 합니다",
    "{project} has no allocation {allocation_id!r}": (
        "과제 {project}에 배정 {allocation_id!r}이(가) 없습니다"
    ),
    "allocation {allocation_id} is {status}": "배정 {allocation_id}은(는) {status} 상태입니다",
    "allocation {allocation} is under another program": (
        "배정 {allocation}은(는) 다른 지원사업에 속합니다"
    ),
    "a top-up asks for GPU-hours of at least one GPU type": (
        "추가 배정은 GPU 종류 하나 이상의 GPU 시간을 신청해야 합니다"
    ),
    "a {kind} asks for no GPU-hours": "{kind} 신청에는 GPU 시간을 신청하지 않습니다",
    "{project} is under no program: name one": (
        "과제 {project}은(는) 어떤 지원사업에도 속하지 않습니다. 지원사업을 지정하세요"
    ),
    "ask for GPU-hours of at least one GPU type": "GPU 종류 하나 이상의 GPU 시간을 신청하세요",
    "a new allocation needs the end of its window": "신규 배정에는 사용 기간의 종료일이 필요합니다",
    "{ends_at} is not after {earliest}": "{ends_at}은(는) {earliest} 이후가 아닙니다",
    "{program} starts {starts_at}": "지원사업 {program}은(는) {starts_at}에 시작합니다",
    "{program} ends {ends_at}": "지원사업 {program}은(는) {ends_at}에 끝납니다",
    "an extension ends after the allocation's {ends_at}": (
        "기간 연장은 배정의 종료일 {ends_at} 이후에 끝나야 합니다"
    ),
    (
        "{start:%Y-%m-%d %H:%M} UTC is in the past: rules are not retroactive (booked "
        "charges and grants were made under the rules then in force)"
    ): (
        "{start:%Y-%m-%d %H:%M} UTC는 지난 시각입니다. 규정은 소급하지 않습니다 (기록된 "
        "과금과 배정은 당시 규정을 따랐습니다)"
    ),
    "{program} already has rules from {start:%Y-%m-%d %H:%M:%S} UTC": (
        "지원사업 {program}에는 이미 {start:%Y-%m-%d %H:%M:%S} UTC부터의 규정이 있습니다"
    ),
    "a startup modifier matches youth-startup organizations": (
        "창업 할인은 청년 창업 기관에 적용됩니다"
    ),
    "name the {kind} the discount is for": "할인 대상 {kind}을(를) 지정하세요",
    "a size class is one of {SIZE_CLASSES}": "기업 규모는 {SIZE_CLASSES} 중 하나입니다",
    "a startup preference matches youth-startup organizations": (
        "창업 우대는 청년 창업 기관에 적용됩니다"
    ),
    "name the {kind} the preference is for": "우대 대상 {kind}을(를) 지정하세요",
    "the program already has rules from that moment": (
        "이 지원사업에는 이미 그 시각부터의 규정이 있습니다"
    ),
    "{program} has no rules {rules_id!r}": "지원사업 {program}에 규정 {rules_id!r}이(가) 없습니다",
    (
        "the rules {rules_id} of {program} have been in force since {effective_from:%Y-%m-%d "
        "%H:%M} UTC, and charges and grants were made under them: they cannot be withdrawn; "
        "set new rules from now on instead"
    ): (
        "지원사업 {program}의 규정 {rules_id}은(는) {effective_from:%Y-%m-%d %H:%M} UTC부터 "
        "적용되어 과금과 배정에 쓰였습니다. 철회할 수 없으니 지금부터 적용할 새 규정을 "
        "정하세요"
    ),
    (
        "concentration cap of {program} (rules from {since}): {org} would hold "
        "{total_hours:,.0f} GPU-hours in grants not yet ended across programs "
        "({held_hours:,.0f} already, this grant {extra_hours:,.0f}), over the cap of "
        "{org_gpu_hours:,} GPU-hours per organization"
    ): (
        "지원사업 {program}의 집중 한도({since}부터의 규정): {org}이(가) 지원사업 전체에서 "
        "끝나지 않은 배정으로 {total_hours:,.0f} GPU 시간을 갖게 됩니다 (기배정 "
        "{held_hours:,.0f}, 이번 배정 {extra_hours:,.0f}). 기관당 한도 {org_gpu_hours:,} GPU "
        "시간을 넘습니다"
    ),
    (
        "concentration cap of {program} (rules from {since}): {org} would be granted "
        "{total_won:,} won by this program ({granted_won:,} already, this grant "
        "{extra_won:,}), over the cap of {org_won:,} won per organization"
    ): (
        "지원사업 {program}의 집중 한도({since}부터의 규정): {org}이(가) 이 지원사업에서 "
        "{total_won}을(를) 배정받게 됩니다 (기배정 {granted_won}, 이번 배정 {extra_won}). "
        "기관당 한도 {org_won}을(를) 넘습니다"
    ),
    "reviewers may not see settlements": "심사위원은 정산 내역을 볼 수 없습니다",
    "{month!r} is not a month (YYYY-MM)": "{month!r}은(는) 월 형식(YYYY-MM)이 아닙니다",
    "you may not run a step in job {job_id}: only its owner (or an operator) may": (
        "작업 {job_id}에서 단계를 실행할 수 없습니다. 작업 소유자(또는 운영자)만 할 수 있습니다"
    ),
    (
        "job {job_id} is {state}: a step runs only inside a running job's allocation (`axc "
        "salloc` makes one)"
    ): (
        "작업 {job_id}은(는) {state} 상태입니다. 단계는 실행 중인 작업의 할당 안에서만 "
        "실행됩니다 (`axc salloc`으로 만듭니다)"
    ),
    "no survey form {ref!r}": "성과 조사표 {ref!r}이(가) 없습니다",
    "{program} already has a survey form {name!r}": (
        "지원사업 {program}에 이미 성과 조사표 {name!r}이(가) 있습니다"
    ),
    "a form is due on some date, or at_end, or both": (
        "조사표에는 기한 날짜나 at_end, 또는 둘 다가 필요합니다"
    ),
    "the form {form!r} asks no such thing": "조사표 {form!r}에는 그런 항목이 없습니다",
    "the program already has a survey form {name!r}": (
        "이 지원사업에는 이미 성과 조사표 {name!r}이(가) 있습니다"
    ),
    "{project} answers rounds {rounds}": "과제 {project}이(가) 응답하는 회차: {rounds}",
    "{label_en} is required": "{label_ko}은(는) 필수 항목입니다",
    "{label_en}: a whole number of {unit}, 0 or more": (
        "{label_ko}: 0 이상의 정수({unit})여야 합니다"
    ),
    "{project} has no grant of this form's program": (
        "과제 {project}에는 이 조사표 지원사업의 배정이 없습니다"
    ),
    "{label_en}: true or false": "{label_ko}: 예 또는 아니요여야 합니다",
    "{label_en}: text of at most 20,000 characters": "{label_ko}: 20,000자 이하의 글이어야 합니다",
    "a template's job runs in the template's project": (
        "템플릿의 작업은 템플릿의 과제에서 실행됩니다"
    ),
    "{project} has no template {name!r}": "과제 {project}에 템플릿 {name!r}이(가) 없습니다",
    "is the submission's own: a template has none": (
        "제출할 때 정하는 값이라 템플릿에는 넣을 수 없습니다"
    ),
    "{project_ref} already has a template {name!r}": (
        "과제 {project_ref}에 이미 템플릿 {name!r}이(가) 있습니다"
    ),
    (
        "too many submissions: {user} submits faster than {rate:g} per second "
        "(max_submissions_per_s_per_user); retry in a moment"
    ): (
        "제출이 너무 많습니다: {user}의 제출 속도가 초당 {rate:g}건을 넘습니다 "
        "(max_submissions_per_s_per_user). 잠시 후 다시 시도하세요"
    ),
    (
        "too many submissions: project {project} is submitted to faster than {rate:g} per "
        "second (max_submissions_per_s_per_project); retry in a moment"
    ): (
        "제출이 너무 많습니다: 과제 {project}에 대한 제출 속도가 초당 {rate:g}건을 "
        "넘습니다 (max_submissions_per_s_per_project). 잠시 후 다시 시도하세요"
    ),
    (
        "too many pending jobs: {name} has {mine} and this would add {adding}; the limit is "
        "{cap} per user (max_pending_jobs_per_user)"
    ): (
        "대기 작업이 너무 많습니다: {name}의 대기 작업 {mine}개에 {adding}개가 더해집니다. "
        "사용자당 한도는 {cap}개입니다 (max_pending_jobs_per_user)"
    ),
    (
        "too many pending jobs: project {name} has {have} and this would add {n}; the limit "
        "is {cap} per project (max_pending_jobs_per_project)"
    ): (
        "대기 작업이 너무 많습니다: 과제 {name}의 대기 작업 {have}개에 {n}개가 더해집니다. "
        "과제당 한도는 {cap}개입니다 (max_pending_jobs_per_project)"
    ),
    "no progress report {report_id!r}": "중간 보고 {report_id!r}이(가) 없습니다",
    "report {id} is {report_status}: it cannot be {verb}": (
        "중간 보고 {id}은(는) {report_status} 상태입니다. {verb}할 수 없습니다"
    ),
    "say why the report is returned": "보고를 보완 요청하는 사유를 적어 주세요",
    "allocation {allocation} has no tranche left to release: no report is due": (
        "배정 {allocation}에는 지급할 단계가 남지 않아 제출할 보고가 없습니다"
    ),
    "report {waiting} of {project} awaits a decision": (
        "과제 {project}의 중간 보고 {waiting}이(가) 결정을 기다리고 있습니다"
    ),
    "allocation {allocation} is {status}: no tranche is released": (
        "배정 {allocation}은(는) {status} 상태라 단계 지급을 하지 않습니다"
    ),
    "tranche {tranche_seq} of {allocation} is not pending": (
        "배정 {allocation}의 {tranche_seq}단계는 지급 대기 중이 아닙니다"
    ),
    "one of {PERIODS}, not {period!r}": "{PERIODS} 중 하나여야 합니다 ({period!r}은(는) 안 됩니다)",
    "your role (reviewer) may not read usage: reviewers judge requests": (
        "심사위원 역할로는 사용량을 볼 수 없습니다. 심사위원은 신청을 심사합니다"
    ),
    "a user's usage is read within a project: name it": (
        "사용자의 사용량은 과제 안에서 조회합니다. 과제를 지정하세요"
    ),
    "more than {MAX_BUCKETS} {period}s: choose a longer period": (
        "{period} 단위로 {MAX_BUCKETS}개를 넘습니다. 더 긴 집계 단위를 고르세요"
    ),
    "the window ends before it starts": "기간의 끝이 시작보다 앞섭니다",
    "no project {project!r}": "과제 {project!r}이(가) 없습니다",
    "no user {user!r} in {project}": "과제 {project}에 사용자 {user!r}이(가) 없습니다",
    "at most 20000 characters": "20000자 이하여야 합니다",
    "choose a file to attach": "첨부할 파일을 고르세요",
    # scores a rubric refuses (model/rubric.py) and array indices (model/arrays.py)
    "the program has no rubric: give one score": (
        "이 지원사업에는 심사 기준표가 없습니다. 점수 하나를 주세요"
    ),
    "the rubric has no criterion {key!r} (it has {keys})": (
        "심사 기준표에 항목 {key!r}이(가) 없습니다 (있는 항목: {keys})"
    ),
    "score {label!r} (1..{scale})": "{label!r} 항목의 점수를 주세요 (1..{scale})",
    "{label!r} is scored 1..{scale}, not {score}": (
        "{label!r} 항목의 점수는 1..{scale}입니다. {score}은(는) 안 됩니다"
    ),
    (
        "array {text!r}: the throttle after % must be a whole number of tasks, "
        "1 or more (e.g. 0-99%8)"
    ): ("배열 {text!r}: % 뒤의 동시 실행 한도는 1 이상의 정수(태스크 수)여야 합니다 (예: 0-99%8)"),
    "array {text!r} is empty: write {forms}": (
        "배열 {text!r}이(가) 비어 있습니다. 다음 형식으로 쓰세요: {forms}"
    ),
    "array {text!r}: cannot read {part!r}; write {forms}": (
        "배열 {text!r}: {part!r}을(를) 읽을 수 없습니다. 다음 형식으로 쓰세요: {forms}"
    ),
    "array {text!r}: {part!r} ends before it starts": (
        "배열 {text!r}: {part!r}의 끝이 시작보다 앞섭니다"
    ),
    "array {text!r}: the step in {part!r} must be 1 or more": (
        "배열 {text!r}: {part!r}의 간격은 1 이상이어야 합니다"
    ),
    "array {text!r}: indices go up to {most}": "배열 {text!r}: 인덱스는 {most}까지입니다",
    "array {text!r}: more than {most} tasks": "배열 {text!r}: 태스크가 {most}개를 넘습니다",
    "must be a date like 2026-03-01, not {value!r}": (
        "2026-03-01 같은 날짜여야 합니다. 입력값: {value!r}"
    ),
}

#: the English words (not names) a message takes as a parameter, in Korean
WORDS: Final[dict[str, str]] = {
    # allocation requests and progress reports: what cannot be done to them
    "resubmitted": "재신청",
    "withdrawn": "철회",
    "assigned reviewers": "심사위원 배정",
    "reviewed": "심사",
    "approved": "승인",
    "rejected": "반려",
    "returned": "보완 요청",
    "accepted": "승인",
    # jobs held, released or changed while pending
    "hold": "보류",
    "release": "보류 해제",
    "update": "변경",
    "held": "보류",
    "released": "보류 해제",
    "updated": "변경",
    # what only operators may do
    "change cohorts": "그룹 변경",
    "change project limits": "과제 한도 변경",
    "change quotas": "할당량 변경",
    "create cohorts": "그룹 생성",
    "create reservations": "예약 생성",
    "delete cohorts": "그룹 삭제",
    "delete reservations": "예약 삭제",
    # what an access rule looks at (``access.Target.kind``)
    "organization": "기관",
    "organizations": "기관",
    "user": "사용자",
    "project": "과제",
    "request": "배정 신청",
    "allocation": "배정",
    "program": "지원사업",
    "programs": "지원사업",
    "audit log": "감사 기록",
    "the price book": "가격표",
    "reminder": "독촉",
    # usage periods, survey units, the matches of discounts and preferences
    "day": "일",
    "week": "주",
    "month": "월",
    "won": "원 단위",
    "a count": "개수",
    "region": "지역",
    "startup": "청년 창업",
    "size": "기업 규모",
    "its single user": "단일 사용자",
    # model.arrays.ARRAY_FORMS
    "N, FIRST-LAST, FIRST-LAST:STEP, comma-separated lists of these, then %MAX": (
        "N, FIRST-LAST, FIRST-LAST:STEP, 이들을 쉼표로 이은 목록, 끝에 %MAX"
    ),
}

#: parameters said through a vocabulary of the catalog (``label(group, value)``)
_VOCABULARY: Final[Mapping[str, str]] = {
    "role": "role",
    "state": "state",
    "stage": "stage",
    "status": "allocation",
    "report_status": "report",
    "kind": "request_kind",
}
#: parameters whose value is an English word of ``WORDS``
_WORDED: Final = frozenset(
    {"verb", "done_to", "action", "thing", "period", "unit", "kind", "forms", "single_user"}
)
#: parameters in won besides those named ``*_won``
_WON: Final = frozenset({"won_per_gpu_hour"})


def placeholders(template: str) -> frozenset[str]:
    """The parameters a template names (``{job_id!r}`` -> ``job_id``)."""
    return frozenset(
        name.split(".")[0].split("[")[0]
        for _, name, _, _ in string.Formatter().parse(template)
        if name
    )


def _say(name: str, value: object, lang: str) -> object:
    if isinstance(value, Count):
        return value.n
    if isinstance(value, Span):
        return duration(value.seconds, lang)
    if (name.endswith("_won") or name in _WON) and isinstance(value, int):
        return won(value, lang)
    group = _VOCABULARY.get(name)
    if group is not None and f"{group}.{value}" in CATALOG:
        return label(group, str(value), lang)
    if name in _WORDED and isinstance(value, str):
        return WORDS.get(value, value)
    return value


def field_label(field: str, lang: str) -> str:
    """An input's name as the form labels it (``items.H100`` -> ``신청 GPU 시간 (H100)``)."""
    head, dot, rest = field.partition(".")
    key = LABELS.get(head)
    if key is None:
        return field
    return translate(key, lang) + (f" ({rest})" if dot else "")


def detail(exc: ServiceError, lang: str) -> str:
    """``exc`` in ``lang``: the service's own sentence in English; in Korean its template
    filled with its parameters in words (the English sentence if the template is unknown)."""
    refusal = exc.refusal if isinstance(exc, Forbidden) else None
    if refusal is not None:  # an access rule's refusal, in words
        what = refusal.name
        return translate("error.may_not", lang).format(
            role=label("role", refusal.role, lang),
            action=label("rule", refusal.action, lang),
            what=(f" {what}" if lang != "ko" else f"{what}의 ") if what else "",
        )
    if lang != "ko":
        return exc.message
    said = MESSAGES.get(exc.template)
    if said is None:
        return exc.message
    try:
        sentence = said.format(**{k: _say(k, v, lang) for k, v in exc.params.items()})
    except (KeyError, IndexError, ValueError, TypeError):
        return exc.message
    if isinstance(exc, InvalidInput):
        return f"{field_label(exc.field, lang)}: {sentence}"
    return sentence
