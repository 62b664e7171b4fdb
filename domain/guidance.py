"""What the person and the employer read about their case (R17): each case status in plain
words with what is awaited from whom, each refusal reason with what to do for that very
reason, and each timeline step. Chinese first, English beside it.

Pure data and lookups: the incoming agency's public progress pages (services/incoming_agency/
progress.py) fill in the agencies by region name. Texts take the placeholders ``{outgoing}``
and ``{incoming}`` (the agency of the outgoing or incoming region, by name) and, for steps,
``{region}``; a Chinese text is wholly Chinese.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from domain.regions import RegionRegistry
from domain.vocabulary import RefusalCode, StopAnswerCode

Party = Literal["outgoing", "incoming", "applicant", "platform", "nobody"]
"""Whose move it is: an agency (named by its region), the person or employer, the national
platform (a region not yet connected), or nobody (the case is closed)."""

Cause = Literal[
    "same_region",
    "not_enrolled_incoming",
    "resident_current_year",
    "cross_scheme_not_enrolled",
    "active_elsewhere",
    "enrolment_active",
    "arrears",
    "account_frozen",
    "no_record",
    "identity_differs",
    "already_transferred",
    "enrolment_in_other_case",
    "bank_holder_not_person",
    "not_retired_on_record",
    "open_case_here",
    "retiree_same_province",
    "retiree_bank_account_missing",
    "resident_bank_account_missing",
    "id_number_invalid",
    "region_unknown",
    "bank_account_malformed",
    "retiree_outside_transfer",
    "province_wide_platform",
    "withdrawal_too_late",
    "unknown",
]
"""What actually stands in the way: two codes with one cause may share their advice,
codes with different causes never do."""


@dataclass(frozen=True)
class RefusalGuidance:
    """A refusal reason as the person reads it: why, in plain words, and what to do."""

    code: str
    cause: Cause
    why_zh: str
    todo_zh: str
    why_en: str
    todo_en: str


@dataclass(frozen=True)
class StatusGuidance:
    """A case status as the person reads it. ``deadline`` names the case deadline that
    says by when, for a case whose projection carries no date of its own; ``withdrawable``:
    the person may still withdraw (before the transfer-out, R16)."""

    status: str
    label_zh: str
    awaiting_zh: str
    label_en: str
    awaiting_en: str
    party: Party
    deadline: str | None = None
    withdrawable: bool = False


@dataclass(frozen=True)
class StepText:
    label_zh: str
    label_en: str


def _guidance(*entries: RefusalGuidance) -> Mapping[str, RefusalGuidance]:
    return MappingProxyType({g.code: g for g in entries})


# One entry per refusal code of domain/eligibility.py (the incoming agency's acceptance
# checks and the outgoing agency's R5-R9, which reach the case as a TransferRefused) and
# per refusal of a withdrawal; tests/unit/test_r17_guidance.py fails for a code without one.
REFUSAL_GUIDANCE: Mapping[str, RefusalGuidance] = _guidance(
    RefusalGuidance(
        code=RefusalCode.SAME_REGION,
        cause="same_region",
        why_zh="转出地与转入地属于同一统筹区，不需要办理转移接续。",
        todo_zh="请原单位暂停缴费、新单位继续缴费即可，无需再申请。",
        why_en="Both regions are the same pooling region: no transfer is needed.",
        todo_en="The former employer suspends contributions and the new one resumes them; "
        "nothing to apply for.",
    ),
    RefusalGuidance(
        code=RefusalCode.INCOMING_NOT_ENROLLED,
        cause="not_enrolled_incoming",
        why_zh="您尚未在转入地参加职工基本医疗保险。",
        todo_zh="请由新单位在转入地为您办理职工医保参保登记，参保后再申请。",
        why_en="You are not yet enrolled in the incoming region's employee scheme.",
        todo_en="Have your new employer enrol you in the employee scheme there, then apply.",
    ),
    RefusalGuidance(
        code=RefusalCode.RESIDENT_TOO_EARLY,
        cause="resident_current_year",
        why_zh="城乡居民医保原则上当年不办理转移。",
        todo_zh="请参加转入地次年的城乡居民医保，参保生效后再申请。",
        why_en="The resident scheme is in principle not transferred within the year.",
        todo_en="Enrol in the incoming region's resident scheme for next year and apply once "
        "it has started.",
    ),
    RefusalGuidance(
        code=RefusalCode.CROSS_SCHEME_NOT_READY,
        cause="cross_scheme_not_enrolled",
        why_zh="跨险种转移需要转入地先为您办理另一险种的参保登记。",
        todo_zh="请先在转入地办理拟参加险种的参保登记，并确认转出地已停保，再申请。",
        why_en="A transfer between schemes needs your enrolment in the other scheme first.",
        todo_en="Enrol in the other scheme in the incoming region, make sure the outgoing "
        "region has suspended you, then apply.",
    ),
    RefusalGuidance(
        code=RefusalCode.DOUBLE_ENROLMENT,
        cause="active_elsewhere",
        why_zh="您在另一个统筹区仍处于参保缴费状态，不能同时在两地参保。",
        todo_zh="请联系您仍在参保的那个地区的单位或医保经办机构办理停保，办妥后补正申请。",
        why_en="You are still actively enrolled in a third region; nobody may be enrolled "
        "in two places at once.",
        todo_en="Ask the employer or agency of that other region to suspend that enrolment, "
        "then correct the application.",
    ),
    RefusalGuidance(
        code=RefusalCode.ENROLMENT_ACTIVE,
        cause="enrolment_active",
        why_zh="您在转出地的参保状态仍为正常参保，尚未停保。",
        todo_zh="请原单位或{outgoing}先为您办理停保（中止参保），办妥后补正申请。",
        why_en="Your enrolment in the outgoing region is still active, not suspended.",
        todo_en="Ask your former employer or {outgoing} to suspend the enrolment first, then "
        "correct the application.",
    ),
    RefusalGuidance(
        code=RefusalCode.CONTRIBUTION_ARREARS,
        cause="arrears",
        why_zh="您在转出地有未缴清的医保费（欠费）。",
        todo_zh="请向{outgoing}补缴欠费，缴清后补正申请。",
        why_en="There are unpaid contributions (arrears) in the outgoing region.",
        todo_en="Pay the arrears to {outgoing}, then correct the application.",
    ),
    RefusalGuidance(
        code=RefusalCode.ACCOUNT_FROZEN,
        cause="account_frozen",
        why_zh="您在转出地的个人账户处于冻结状态。",
        todo_zh="请联系{outgoing}，了解账户冻结的原因并办理解冻，解冻后补正申请。",
        why_en="Your personal account in the outgoing region is frozen.",
        todo_en="Contact {outgoing} about the frozen account and have it unfrozen, then "
        "correct the application.",
    ),
    RefusalGuidance(
        code=RefusalCode.PERSON_UNKNOWN,
        cause="no_record",
        why_zh="转出地没有查到您在所申请险种下的参保记录。",
        todo_zh="请核对转出地和险种是否填写正确，或向{outgoing}查询您的参保记录，再重新申请。",
        why_en="The outgoing region found no enrolment of yours in that scheme.",
        todo_en="Check the outgoing region and scheme you gave, or ask {outgoing} about your "
        "record, then apply again.",
    ),
    RefusalGuidance(
        code=RefusalCode.IDENTITY_MISMATCH,
        cause="identity_differs",
        why_zh="申请中的身份信息与转出地的参保登记不一致。",
        todo_zh="请核对身份证号码和姓名；如转出地登记有误，请先到{outgoing}更正，再重新申请。",
        why_en="The identity in the application differs from the outgoing region's record.",
        todo_en="Check your ID number and name; if the record is wrong, have {outgoing} "
        "correct it, then apply again.",
    ),
    RefusalGuidance(
        code=RefusalCode.ALREADY_TRANSFERRED,
        cause="already_transferred",
        why_zh="您的参保关系已经从转出地转出。",
        todo_zh="无需重复申请；如需了解上一次转移的情况，请联系{outgoing}。",
        why_en="Your enrolment has already been transferred out.",
        todo_en="No new application is needed; ask {outgoing} about the earlier transfer.",
    ),
    RefusalGuidance(
        code=RefusalCode.ENROLMENT_IN_TRANSFER,
        cause="enrolment_in_other_case",
        why_zh="您在转出地的参保关系正由另一笔转移申请办理中。",
        todo_zh="请等待那笔转移办结，或先撤回那笔申请，再重新申请。",
        why_en="Another transfer application is already moving this enrolment.",
        todo_en="Wait for that transfer to finish, or withdraw it, then apply again.",
    ),
    RefusalGuidance(
        code=RefusalCode.BANK_HOLDER_MISMATCH,
        cause="bank_holder_not_person",
        why_zh="所填银行账户的户名不是参保人本人。",
        todo_zh="请提供参保人本人名下的银行账户，补正申请。",
        why_en="The bank account given is not in the insured person's own name.",
        todo_en="Give a bank account in the insured person's own name and correct the application.",
    ),
    RefusalGuidance(
        code=RefusalCode.RETIREE_NOT_ON_RECORD,
        cause="not_retired_on_record",
        why_zh="转出地的参保记录显示您不是退休人员。",
        todo_zh="请向{outgoing}核实退休登记；如尚未退休，请按一般转移接续补正申请，"
        "不选择异地安置退休人员。",
        why_en="The outgoing region's record does not show you as retired.",
        todo_en="Check your retirement record with {outgoing}; if you are not retired, "
        "correct the application as an ordinary transfer.",
    ),
    RefusalGuidance(
        code=RefusalCode.OPEN_CASE_ELSEWHERE,
        cause="open_case_here",
        why_zh="您在本机构已有另一笔转移接续申请正在办理。",
        todo_zh="请等待已有申请办结，或先撤回已有申请，再重新申请。",
        why_en="You already have another open transfer application at this agency.",
        todo_en="Wait for the open application to finish, or withdraw it, then apply again.",
    ),
    RefusalGuidance(
        code=RefusalCode.RETIREE_SAME_PROVINCE,
        cause="retiree_same_province",
        why_zh="个人账户余额支付给本人仅适用于跨省异地安置的退休人员。",
        todo_zh="省内安置请按一般转移接续重新申请。",
        why_en="Paying out the account applies only to retirees resettled in another province.",
        todo_en="For a move within the province, apply as an ordinary transfer.",
    ),
    RefusalGuidance(
        code=RefusalCode.BANK_ACCOUNT_REQUIRED,
        cause="retiree_bank_account_missing",
        why_zh="跨省异地安置退休人员的个人账户余额支付到本人银行账户，申请中未提供账户。",
        todo_zh="请在申请中提供本人银行账户，用于接收个人账户余额。",
        why_en="A resettled retiree's balance is paid to a bank account, and none was given.",
        todo_en="Give your own bank account in the application to receive the balance.",
    ),
    RefusalGuidance(
        code=RefusalCode.BANK_ACCOUNT_FOR_RESIDENT,
        cause="resident_bank_account_missing",
        why_zh="城乡居民医保没有个人账户，职工医保个人账户余额将支付到本人银行账户。",
        todo_zh="请提供本人银行账户，用于接收原职工医保个人账户余额。",
        why_en="The resident scheme has no personal account: the balance is paid to your "
        "bank account.",
        todo_en="Give your own bank account to receive the employee account's balance.",
    ),
    RefusalGuidance(
        code=RefusalCode.INVALID_ID_NUMBER,
        cause="id_number_invalid",
        why_zh="公民身份号码有误（位数、出生日期或校验码不对）。",
        todo_zh="请核对十八位公民身份号码后重新申请。",
        why_en="The resident ID number is wrong (length, birth date or check digit).",
        todo_en="Check the 18-character ID number and apply again.",
    ),
    RefusalGuidance(
        code=RefusalCode.UNKNOWN_REGION,
        cause="region_unknown",
        why_zh="所填的转出地或转入地不是已登记的统筹区。",
        todo_zh="请核对转出地和转入地，选择正确的统筹区后重新申请。",
        why_en="The outgoing or incoming region is not a known pooling region.",
        todo_en="Check both regions, choose the right ones and apply again.",
    ),
    RefusalGuidance(
        code=RefusalCode.INVALID_BANK_ACCOUNT,
        cause="bank_account_malformed",
        why_zh="银行账号格式有误（应为十二至三十位数字）。",
        todo_zh="请核对银行账号后重新提交。",
        why_en="The bank account number is malformed (12 to 30 digits).",
        todo_en="Check the account number and submit again.",
    ),
    RefusalGuidance(
        code=RefusalCode.RETIREE_OUTSIDE_TRANSFER,
        cause="retiree_outside_transfer",
        why_zh="转出地的参保记录显示您是退休人员，退休人员不办理医保关系转移接续。",
        todo_zh="您的参保关系保留在原参保地，无需转移；如已跨省异地安置，"
        "请改为申请异地安置退休人员个人账户余额支付，余额支付至本人银行账户。",
        why_en="The outgoing region's record shows you as retired: retirees are outside the "
        "transfer procedure.",
        todo_en="Your enrolment stays where it is; if you resettled in another province, "
        "apply for the resettled-retiree payout to your own bank account instead.",
    ),
    RefusalGuidance(
        code=RefusalCode.PROVINCE_WIDE_PLATFORM,
        cause="province_wide_platform",
        why_zh="转出地与转入地同属一省，全省共用一个医保信息平台，省内流动无需办理转移接续。",
        todo_zh="请直接到{incoming}办理参保登记（职工医保由新单位继续缴费），"
        "缴费年限已在平台上连续记载。",
        why_en="Both regions are in a province with one platform for all its cities: a move "
        "within it needs no transfer.",
        todo_en="Enrol directly with {incoming} (in the employee scheme the new employer "
        "resumes the contributions); your years are already on the platform.",
    ),
    RefusalGuidance(
        code=StopAnswerCode.TOO_LATE_TRANSFERRED_OUT,
        cause="withdrawal_too_late",
        why_zh="{outgoing}已办理转出，撤回申请未获同意。",
        todo_zh="无需办理：本次转移将继续办结，个人账户余额将转入新账户或支付至本人账户。",
        why_en="{outgoing} had already transferred the case out, so the withdrawal was refused.",
        todo_en="Nothing to do: the transfer goes on to its end, and the balance reaches the "
        "new account or your own bank account.",
    ),
)

UNKNOWN_REFUSAL = RefusalGuidance(
    code="",
    cause="unknown",
    why_zh="转出地暂不予办理。",
    todo_zh="请联系{incoming}了解具体原因和处理办法。",
    why_en="The outgoing agency cannot proceed for now.",
    todo_en="Ask {incoming} for the reason and what to do.",
)


def refusal_guidance(code: str) -> RefusalGuidance:
    """The guidance for a refusal code; a code this release does not know (a newer
    counterpart's) gets a plain "ask the incoming agency", never an empty answer."""
    return REFUSAL_GUIDANCE.get(code, UNKNOWN_REFUSAL)


def _statuses(*entries: StatusGuidance) -> Mapping[str, StatusGuidance]:
    return MappingProxyType({s.status: s for s in entries})


# Every status the incoming agency's case workflow records (workflows/incoming/).
STATUS_GUIDANCE: Mapping[str, StatusGuidance] = _statuses(
    StatusGuidance(
        status="submitted",
        label_zh="申请已受理",
        awaiting_zh="{incoming}正在向转出地发送转移接续联系函",
        label_en="Application accepted",
        awaiting_en="{incoming} is sending the transfer request to the outgoing region",
        party="incoming",
        withdrawable=True,
    ),
    StatusGuidance(
        status="waiting_region_connection",
        label_zh="等待转出地接入全国医保信息平台",
        awaiting_zh="转出地接入平台后，联系函将自动发出；长时间未接入的，经办人员可改为线下办理",
        label_en="Waiting for the outgoing region to connect to the national platform",
        awaiting_en="the request goes out as soon as the region connects; if it takes long, "
        "a clerk may continue offline",
        party="platform",
        withdrawable=True,
    ),
    StatusGuidance(
        status="awaiting_transfer_out",
        label_zh="转出地办理中",
        awaiting_zh="{outgoing}办理转出，出具参保人员基本医疗保险信息表",
        label_en="With the outgoing agency",
        awaiting_en="{outgoing} to transfer you out and send the information sheet",
        party="outgoing",
        deadline="transfer_out_due",
        withdrawable=True,
    ),
    StatusGuidance(
        status="refused_correctable",
        label_zh="暂不予办理，可以补正",
        awaiting_zh="您按下列原因处理后，通过原申请渠道提交补正",
        label_en="Refused for now: you can correct it",
        awaiting_en="you to fix the reasons below and send a correction through the channel "
        "you applied by",
        party="applicant",
        withdrawable=True,
    ),
    StatusGuidance(
        status="refused",
        label_zh="不予办理，本次申请已终止",
        awaiting_zh="",
        label_en="Refused: this application has ended",
        awaiting_en="",
        party="nobody",
    ),
    StatusGuidance(
        status="withdrawal_requested",
        label_zh="撤回申请待转出地答复",
        awaiting_zh="{outgoing}答复撤回申请",
        label_en="Withdrawal awaiting the outgoing agency",
        awaiting_en="{outgoing} to answer the withdrawal",
        party="outgoing",
        deadline="transfer_out_due",
    ),
    StatusGuidance(
        status="withdrawn",
        label_zh="申请已撤回",
        awaiting_zh="",
        label_en="Application withdrawn",
        awaiting_en="",
        party="nobody",
    ),
    StatusGuidance(
        status="cancelled",
        label_zh="经办机构已撤销本次申请",
        awaiting_zh="",
        label_en="Cancelled by the agency",
        awaiting_en="",
        party="nobody",
    ),
    StatusGuidance(
        status="offline_channel",
        label_zh="已改为线下办理",
        awaiting_zh="您向{outgoing}申领参保凭证，持凭证和身份证到{incoming}窗口办理转入",
        label_en="Continued offline",
        awaiting_en="you to get the insurance certificate from {outgoing} and bring it with "
        "your ID card to {incoming}",
        party="applicant",
    ),
    StatusGuidance(
        status="offline_certificate_issued",
        label_zh="已出具参保凭证，请到转入地窗口办理",
        awaiting_zh="您持{outgoing}出具的参保凭证和身份证到{incoming}窗口办理转入",
        label_en="Insurance certificate issued: bring it to the incoming agency",
        awaiting_en="you to bring the insurance certificate from {outgoing} and your ID card "
        "to {incoming}",
        party="applicant",
        deadline="certificate_due",
    ),
    StatusGuidance(
        status="transfer_in",
        label_zh="转入地办理中",
        awaiting_zh="{incoming}办理转入，接续您的参保关系",
        label_en="With the incoming agency",
        awaiting_en="{incoming} to transfer you in and continue your enrolment",
        party="incoming",
        deadline="transfer_in_due",
    ),
    StatusGuidance(
        status="exception",
        label_zh="信息表核对中",
        awaiting_zh="{incoming}的经办人员与转出地核对参保信息表",
        label_en="Information sheet being checked",
        awaiting_en="a clerk of {incoming} to check the information sheet with the outgoing region",
        party="incoming",
    ),
    StatusGuidance(
        status="awaiting_balance",
        label_zh="已转入，等待个人账户余额",
        awaiting_zh="{outgoing}划转个人账户余额或说明余额去向",
        label_en="Transferred in; waiting for the account balance",
        awaiting_en="{outgoing} to remit the personal-account balance or say where it goes",
        party="outgoing",
        deadline="total_due",
    ),
    StatusGuidance(
        status="balance_mismatch",
        label_zh="到账金额核对中",
        awaiting_zh="{incoming}的经办人员与转出地核对到账金额",
        label_en="Amount received being checked",
        awaiting_en="a clerk of {incoming} to settle the amount with the outgoing region",
        party="incoming",
    ),
    StatusGuidance(
        status="completed",
        label_zh="已办结",
        awaiting_zh="",
        label_en="Completed",
        awaiting_en="",
        party="nobody",
    ),
    StatusGuidance(
        status="balance_returned",
        label_zh="余额已退回转出地，本次转移已终止",
        awaiting_zh="",
        label_en="Balance returned to the outgoing region; the case has ended",
        awaiting_en="",
        party="nobody",
    ),
)

UNKNOWN_STATUS = StatusGuidance(
    status="",
    label_zh="办理中",
    awaiting_zh="{incoming}办理",
    label_en="In progress",
    awaiting_en="{incoming} to handle it",
    party="incoming",
)


def status_guidance(status: str) -> StatusGuidance:
    """The plain words for a status; one this release does not know reads "in progress"."""
    return STATUS_GUIDANCE.get(status, UNKNOWN_STATUS)


# Timeline events as steps the person reads; None: a step of the agencies' own (a decision
# recorded with its rule, a clerk's retry) that says nothing new to the person.
STEPS: Mapping[str, StepText | None] = MappingProxyType(
    {
        "application_accepted": StepText("申请已受理", "Application accepted"),
        "waiting_for_region_connection": StepText(
            "等待{region}接入全国医保信息平台", "Waiting for {region} to connect to the platform"
        ),
        "region_connected": StepText("{region}已接入平台", "{region} connected"),
        "clerk_retry_delivery": None,
        "transfer_request_sent": StepText(
            "已向{outgoing}发送转移接续联系函", "Transfer request sent to {outgoing}"
        ),
        "reminder_sent": StepText("已提醒{outgoing}按时办理", "{outgoing} reminded of its limit"),
        "reminder_received": None,
        "escalated": StepText("已提交经办人员督办", "Escalated to a clerk"),
        "escalation_received": StepText("对方经办机构已提交督办", "Escalated by the other agency"),
        "transfer_refused_correctable": StepText(
            "转出地暂不予办理，可以补正", "Refused for now: correctable"
        ),
        "transfer_refused": StepText("转出地不予办理", "Refused by the outgoing agency"),
        "correction_submitted": StepText("已提交补正", "Correction submitted"),
        "correction_window_expired": StepText(
            "补正期限已过，申请终止", "Correction period over: the application ended"
        ),
        "withdrawal_requested": StepText("已申请撤回", "Withdrawal asked for"),
        "withdrawal_refused": StepText(
            "转出地已办理转出，撤回未获同意", "Withdrawal refused: already transferred out"
        ),
        "application_withdrawn": StepText("申请已撤回", "Application withdrawn"),
        "case_cancelled_by_clerk": StepText("经办机构已撤销申请", "Cancelled by the agency"),
        "switched_to_offline_channel": StepText("已改为线下办理", "Continued offline"),
        "offline_channel_requested": StepText(
            "已申请改为线下办理", "Offline channel asked of {outgoing}"
        ),
        "insurance_certificate_issued": StepText(
            "{outgoing}已出具参保凭证", "Insurance certificate issued by {outgoing}"
        ),
        "insurance_certificate_loaded": StepText(
            "已凭参保凭证办理转入", "Insurance certificate loaded"
        ),
        "information_sheet_received": StepText(
            "已收到转出地参保信息表", "Information sheet received"
        ),
        "information_sheet_held": StepText(
            "信息表待经办人员核对", "Information sheet held for a clerk's check"
        ),
        "information_sheet_accepted_by_clerk": StepText(
            "经办人员已核对信息表", "Information sheet checked by a clerk"
        ),
        "continuity_assessed": None,
        "continuity_not_assessed": None,
        "decision": None,
        "clerk_retry_step": None,
        "transfer_in_completed": StepText(
            "已办理转入，参保关系已接续", "Transferred in: enrolment continued"
        ),
        "balance_paid_to_bank": StepText(
            "个人账户余额已支付至本人银行账户", "Balance paid to your own bank account"
        ),
        "balance_not_transferred": StepText(
            "个人账户余额按规定不划转", "Balance not moved, as the rules say"
        ),
        "balance_notice_held": None,
        "balance_mismatch": StepText("到账金额与信息表不符，正在核对", "Amount mismatch: checking"),
        "mismatch_resolved": StepText("经办人员已处理金额差异", "Amount mismatch settled"),
        "balance_credited": StepText("个人账户余额已转入新账户", "Balance credited"),
        "case_closed_balance_returned": StepText(
            "余额已退回转出地，本次转移终止", "Balance returned; the case ended"
        ),
        "case_completed": StepText("转移接续已办结", "Transfer completed"),
        "residual_balance_credited": StepText("补缴款项已转入新账户", "Late contribution credited"),
    }
)


def step_text(event: str) -> StepText | None:
    """The step a timeline event shows the person, None for one it does not show (an
    event this release does not know is not shown either)."""
    return STEPS.get(event)


def agency_zh(region_name: str) -> str:
    return f"{region_name}医保经办机构"


def agency_en(region_name: str) -> str:
    return f"the medical insurance agency of {region_name}"


class AgencyNames:
    """The two agencies of a case, by their regions' names (never codes), for the texts
    above: ``{outgoing}``, ``{incoming}`` and ``{region}`` filled in."""

    def __init__(self, registry: RegionRegistry, from_region: str, to_region: str) -> None:
        self.registry = registry
        self.outgoing = self.region_zh(from_region)
        self.incoming = self.region_zh(to_region)
        self.outgoing_en = self.region_en(from_region)
        self.incoming_en = self.region_en(to_region)

    def region_zh(self, code: str) -> str:
        region = self.registry.get(code)
        return region.name if region is not None else "该地区"

    def region_en(self, code: str) -> str:
        region = self.registry.get(code)
        if region is None:
            return "that region"
        return region.name_en or region.name

    def zh(self, text: str, region: str = "") -> str:
        return text.format(
            outgoing=agency_zh(self.outgoing),
            incoming=agency_zh(self.incoming),
            region=self.region_zh(region) if region else self.outgoing,
        )

    def en(self, text: str, region: str = "") -> str:
        return text.format(
            outgoing=agency_en(self.outgoing_en),
            incoming=agency_en(self.incoming_en),
            region=self.region_en(region) if region else self.outgoing_en,
        )

    def party(self, guidance: StatusGuidance) -> tuple[str, str]:
        return {
            "outgoing": (agency_zh(self.outgoing), agency_en(self.outgoing_en)),
            "incoming": (agency_zh(self.incoming), agency_en(self.incoming_en)),
            "applicant": ("您（参保人或用人单位）", "you (the person or the employer)"),
            "platform": (
                f"全国医保信息平台（{self.outgoing}尚未接入）",
                f"the national platform ({self.outgoing_en} not yet connected)",
            ),
            "nobody": ("", ""),
        }[guidance.party]
