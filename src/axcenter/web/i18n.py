"""Korean and English: the message catalog, language choice and won as people write it.

Korean is the default when the browser asks for it (``Accept-Language``); a choice made
on the page is kept in a cookie. Won amounts: Korean ``1,234,567원`` in tables and
``12억 3,456만 7,890원`` in headline figures; English ``₩1,234,567``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final

__all__ = [
    "CATALOG",
    "DEFAULT",
    "LANGUAGES",
    "moment",
    "negotiate",
    "translate",
    "won",
    "won_words",
]

LANGUAGES: Final = ("ko", "en")
DEFAULT: Final = "en"

#: key -> (English, Korean)
CATALOG: Final[dict[str, tuple[str, str]]] = {
    "app.title": ("axcenter", "axcenter"),
    "app.tagline": ("AI computing center", "AI 컴퓨팅 센터"),
    "nav.main": ("Main navigation", "주 메뉴"),
    "nav.cluster": ("Cluster", "클러스터"),
    "nav.queue": ("Queue", "대기열"),
    "nav.jobs": ("Jobs", "작업"),
    "nav.projects": ("Projects", "과제"),
    "nav.requests": ("Requests", "배정 신청"),
    "nav.programs": ("Programs", "지원사업"),
    "nav.language": ("Language", "언어"),
    "nav.signed_in_as": ("Signed in as", "로그인 사용자"),
    "nav.sign_out": ("Sign out", "로그아웃"),
    "nav.skip": ("Skip to content", "본문 바로가기"),
    "login.title": ("Sign in", "로그인"),
    "login.token": ("API token", "API 토큰"),
    "login.token_help": (
        "The token axc printed for you (axc_…); an operator can issue one with axc user token.",
        "axc가 발급한 토큰(axc_…)입니다. 운영자가 axc user token으로 발급할 수 있습니다.",
    ),
    "login.submit": ("Sign in", "로그인"),
    "login.bad_token": ("Unknown, revoked or inactive token.", "알 수 없거나 폐기된 토큰입니다."),
    "role.operator": ("operator", "운영자"),
    "role.program_manager": ("program manager", "사업 관리자"),
    "role.reviewer": ("reviewer", "심사위원"),
    "role.org_admin": ("organization admin", "기관 관리자"),
    "role.member": ("member", "구성원"),
    "cluster.title": ("Cluster", "클러스터"),
    "cluster.gpus": ("GPUs", "GPU"),
    "cluster.gpus_used": ("GPUs in use", "사용 중 GPU"),
    "cluster.pending": ("Pending jobs", "대기 작업"),
    "cluster.running": ("Running jobs", "실행 작업"),
    "cluster.nodes": ("Nodes and devices", "노드와 장치"),
    "cluster.nodes_matching": ("nodes match", "개 노드"),
    "cluster.node": ("Node", "노드"),
    "cluster.type": ("GPU type", "GPU 종류"),
    "cluster.state": ("State", "상태"),
    "cluster.devices": ("Devices", "장치"),
    "cluster.free": ("free", "유휴"),
    "cluster.logical": ("logical", "논리"),
    "cluster.hidden": ("(other tenant)", "(다른 기관)"),
    "cluster.utilization": ("GPU utilization by type", "GPU 종류별 사용률"),
    "cluster.queue_length": ("Queue length", "대기열 길이"),
    "cluster.waits": ("Queue wait percentiles", "대기 시간 백분위"),
    "cluster.window": ("Window", "기간"),
    "cluster.hours": ("hours", "시간"),
    "chart.data": ("Chart data", "차트 데이터"),
    "chart.time": ("Time (UTC)", "시각 (UTC)"),
    "chart.pending_jobs": ("Mean pending jobs", "평균 대기 작업 수"),
    "chart.wait_p50": ("Median wait (s)", "대기 시간 중앙값 (초)"),
    "chart.wait_p90": ("90th percentile wait (s)", "대기 시간 90백분위 (초)"),
    "chart.used": ("Used", "사용"),
    "chart.granted": ("Granted", "배정"),
    "chart.remaining": ("Remaining budget", "잔여 예산"),
    "chart.forecast": ("Forecast", "예측"),
    "chart.gpu_hours": ("GPU-hours", "GPU 시간"),
    "queue.title": ("Queue", "대기열"),
    "queue.position": ("#", "순번"),
    "queue.reason": ("Waiting for", "대기 사유"),
    "queue.estimate": ("Estimated start", "예상 시작"),
    "queue.empty": ("No pending job.", "대기 중인 작업이 없습니다."),
    "queue.total": ("pending jobs you may see", "조회 가능한 대기 작업"),
    "reason.priority": ("higher-priority jobs", "우선순위가 높은 작업"),
    "reason.resources": ("free devices", "유휴 장치"),
    "reason.quota": ("quota", "할당량"),
    "reason.reservation": ("a reservation", "예약"),
    "reason.limit": ("a limit", "제한"),
    "reason.gang": ("a gang job ahead", "앞선 다중 노드 작업"),
    "reason.budget": ("budget", "예산"),
    "reason.preempting": ("preemption to finish", "선점 완료"),
    "reason.held": ("held until released", "해제될 때까지 보류"),
    "reason.dependency": ("jobs it depends on", "선행 작업"),
    "reason.nodes": ("enough nodes", "충분한 노드"),
    "jobs.title": ("Jobs", "작업"),
    "jobs.new": ("Submit a job", "작업 제출"),
    "jobs.id": ("Job", "작업"),
    "jobs.name": ("Name", "이름"),
    "jobs.project": ("Project", "과제"),
    "jobs.user": ("User", "사용자"),
    "jobs.state": ("State", "상태"),
    "jobs.gpus": ("GPUs", "GPU"),
    "jobs.submitted": ("Submitted", "제출"),
    "jobs.started": ("Started", "시작"),
    "jobs.ended": ("Ended", "종료"),
    "jobs.filter": ("Filter", "필터"),
    "jobs.any_state": ("any state", "모든 상태"),
    "jobs.mine": ("only mine", "내 작업만"),
    "jobs.apply": ("Apply", "적용"),
    "jobs.next": ("Older jobs", "이전 작업"),
    "jobs.empty": ("No job matches.", "해당하는 작업이 없습니다."),
    "jobs.command": ("Command", "명령"),
    "jobs.command_help": (
        "Split like a shell command line, e.g. python train.py --epochs 3",
        "셸 명령줄처럼 나뉩니다. 예: python train.py --epochs 3",
    ),
    "jobs.gpus_per_node": ("GPUs per node", "노드당 GPU"),
    "jobs.nodes": ("Nodes", "노드 수"),
    "jobs.gpu_types": ("GPU type", "GPU 종류"),
    "jobs.any_type": ("any type", "모든 종류"),
    "jobs.time_limit": ("Time limit (minutes)", "시간 제한 (분)"),
    "jobs.priority": ("Priority", "우선순위"),
    "jobs.output": ("Output", "출력"),
    "jobs.output_log": ("keep a log", "로그로 보관"),
    "jobs.output_discard": ("discard (no log)", "버림 (로그 없음)"),
    "jobs.submit": ("Submit", "제출"),
    "jobs.spec": ("Specification", "명세"),
    "jobs.events": ("Events", "이벤트"),
    "jobs.placement": ("Placement", "배치"),
    "jobs.log": ("Log", "로그"),
    "jobs.log_hidden": (
        "The log belongs to another organization.",
        "다른 기관의 로그입니다.",
    ),
    "jobs.log_discarded": (
        "This job discards its output (submitted with output=discard): it has no log.",
        "이 작업은 출력을 버리도록 제출되었습니다(output=discard). 로그가 없습니다.",
    ),
    "jobs.charges": ("Charges", "과금"),
    "jobs.charged": ("Charged", "과금액"),
    "jobs.held": ("Held", "예치액"),
    "jobs.cancel": ("Cancel job", "작업 취소"),
    "jobs.resubmit": ("Resubmit", "다시 제출"),
    "jobs.reason": ("Reason", "사유"),
    "jobs.borrowed": ("on borrowed capacity (preemptible)", "차용 자원에서 실행 (선점 가능)"),
    "jobs.workdir": ("Working directory", "작업 디렉터리"),
    "jobs.time": ("Time", "시각"),
    "jobs.transition": ("Transition", "전이"),
    "jobs.kind": ("Kind", "구분"),
    "jobs.amount": ("Won", "금액"),
    "projects.title": ("Projects", "과제"),
    "projects.sector": ("Sector", "산업 분야"),
    "projects.program": ("Program", "지원사업"),
    "projects.objective": ("Objective", "목표"),
    "projects.allocations": ("Allocations", "배정"),
    "projects.granted_won": ("Granted", "배정액"),
    "projects.left_won": ("Remaining", "잔액"),
    "projects.used": ("Used", "사용률"),
    "projects.window": ("Window", "기간"),
    "projects.gpu_hours": (
        "GPU-hours by type: used vs granted",
        "GPU 종류별 사용 시간 대비 배정 시간",
    ),
    "projects.left_hours": ("GPU-hours left", "잔여 GPU 시간"),
    "projects.warnings": ("Warnings", "경고"),
    "projects.warn_used": (
        "Allocation {id} is {pct}% used: {left} left.",
        "배정 {id}의 {pct}%를 사용했습니다. 잔액 {left}.",
    ),
    "projects.warn_exhausted": (
        "Allocation {id} is exhausted.",
        "배정 {id}이(가) 모두 소진되었습니다.",
    ),
    "projects.on_exhaustion.stop": (
        "New jobs wait until it is topped up.",
        "추가 배정 전까지 새 작업은 대기합니다.",
    ),
    "projects.on_exhaustion.preemptible": (
        "New jobs run only as preemptible borrowers.",
        "새 작업은 선점 가능한 차용 작업으로만 실행됩니다.",
    ),
    "projects.members": ("Members", "구성원"),
    "projects.none": ("No project to show.", "표시할 과제가 없습니다."),
    "requests.title": ("Allocation requests", "배정 신청"),
    "requests.kind": ("Kind", "종류"),
    "requests.status": ("Stage", "단계"),
    "requests.items": ("GPU-hours asked", "신청 GPU 시간"),
    "requests.score": ("Mean score", "평균 점수"),
    "requests.justification": ("Justification", "신청 사유"),
    "requests.history": ("History", "이력"),
    "requests.review": ("Review", "심사"),
    "requests.score_label": ("Score (1 to 5)", "점수 (1~5)"),
    "requests.comment": ("Comment", "의견"),
    "requests.submit_review": ("Submit review", "심사 제출"),
    "requests.decide": ("Decision", "결정"),
    "requests.approve": ("Approve", "승인"),
    "requests.reject": ("Reject", "반려"),
    "requests.return": ("Return for changes", "보완 요청"),
    "requests.none": ("No request to show.", "표시할 신청이 없습니다."),
    "requests.actor": ("Who", "처리자"),
    "requests.action": ("Action", "조치"),
    "requests.reviewers": ("Reviewers", "심사위원"),
    "programs.title": ("Funding programs", "지원사업"),
    "programs.budget": ("Budget", "예산"),
    "programs.allocated": ("Granted", "배정액"),
    "programs.charged": ("Charged", "집행액"),
    "programs.remaining": ("Remaining", "잔액"),
    "programs.rate": ("Current rate per day", "일일 집행 속도"),
    "programs.forecast": ("Budget runs out", "예산 소진 예상일"),
    "programs.never": ("not at the current rate", "현재 속도로는 소진되지 않음"),
    "programs.burndown": ("Budget burn-down and forecast", "예산 소진 추이와 예측"),
    "programs.by_org": ("Spending by organization", "기관별 집행"),
    "programs.by_sector": ("Spending by industry sector", "산업 분야별 집행"),
    "programs.by_type": ("Spending by GPU type", "GPU 종류별 집행"),
    "programs.by_size": ("Spending by company size", "기업 규모별 집행"),
    "programs.sme_share": ("SME share of charges", "중소기업 집행 비중"),
    "programs.export": ("Export CSV", "CSV 내보내기"),
    "programs.usage_csv": ("usage by organization", "기관별 사용량"),
    "programs.burndown_csv": ("burn-down per day", "일별 소진 내역"),
    "programs.period": ("Period", "사업 기간"),
    "programs.public_share": ("Public share", "정부 지원 비율"),
    "programs.your_usage": ("Your organization's usage", "소속 기관 사용량"),
    "programs.none": ("No program.", "지원사업이 없습니다."),
    "report.group": ("Group", "구분"),
    "report.charged": ("Charged", "집행액"),
    "report.public": ("Public", "정부 지원"),
    "report.copay": ("Co-pay", "기업 부담"),
    "report.used_hours": ("GPU-hours used", "사용 GPU 시간"),
    "report.granted_hours": ("GPU-hours granted", "배정 GPU 시간"),
    "error.title": ("Something is wrong", "요청을 처리할 수 없습니다"),
    "error.back": ("Back to the cluster", "클러스터로 돌아가기"),
    "form.invalid": ("Please correct this:", "다음 내용을 확인해 주세요:"),
    "common.none": ("none", "없음"),
    "common.yes": ("yes", "예"),
    "common.previous": ("Previous", "이전"),
    "common.next": ("Next", "다음"),
}


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The page language: the cookie's choice, else the browser's first of ``LANGUAGES``
    by preference (``q``), else English."""
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            ranked.append((-q, i, primary))
    return min(ranked)[2] if ranked else DEFAULT


def translate(key: str, lang: str) -> str:
    """The text of ``key``; an unknown key shows itself (a test checks there are none)."""
    entry = CATALOG.get(key)
    if entry is None:
        return key
    return entry[1] if lang == "ko" else entry[0]


def won(amount: int, lang: str) -> str:
    """Exact won with digit grouping: ``1,234,567원`` or ``₩1,234,567``."""
    if lang == "ko":
        return f"{amount:,}원"
    sign = "-" if amount < 0 else ""
    return f"{sign}₩{abs(amount):,}"


def won_words(amount: int, lang: str) -> str:
    """Headline won: Korean groups by 억 (10^8) and 만 (10^4): ``12억 3,456만 7,890원``;
    English keeps the exact figure."""
    if lang != "ko":
        return won(amount, lang)
    sign = "-" if amount < 0 else ""
    rest = abs(amount)
    eok, rest = divmod(rest, 10**8)
    man, one = divmod(rest, 10**4)
    parts = []
    if eok:
        parts.append(f"{eok:,}억")
    if man:
        parts.append(f"{man:,}만")
    if one or not parts:
        parts.append(f"{one:,}")
    return sign + " ".join(parts) + "원"


def moment(value: datetime | date | None, lang: str) -> str:
    """A UTC time as ``2026-11-25 18:20 UTC`` (the same in both languages)."""
    del lang
    if value is None:
        return "\u2013"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()
