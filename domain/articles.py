"""Where each rule comes from: the provision of the 2021 interim measures (or the other
source) beside our rule id, so a clerk reading a decision sees the law, not only "R12".

Article numbers are cited only where they have been checked against the published text;
until then a provision is cited by what it governs (``article`` None). The policy team
adds a checked number here, and every decision cites it from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MEASURES_ZH: Final = "《基本医疗保障关系转移接续暂行办法》"
MEASURES_EN: Final = (
    "the Interim Measures for the Transfer and Continuation of Basic Medical Insurance"
)
CIVIL_CODE_ZH: Final = "《中华人民共和国民法典》"


@dataclass(frozen=True)
class Provision:
    """The source of one rule: the document, what its provision governs, its article."""

    rule: str
    source_zh: str
    subject_zh: str
    subject_en: str
    article: str | None = None  # e.g. "第十条", once checked against the published text

    def citation_zh(self) -> str:
        where = self.article or f"关于{self.subject_zh}的规定"
        return f"{self.rule}，依据{self.source_zh}{where}"

    def citation_en(self) -> str:
        where = self.article or f"the provision on {self.subject_en}"
        source = MEASURES_EN if self.source_zh == MEASURES_ZH else self.source_zh
        return f"{self.rule}, under {where} of {source}"


def _measures(rule: str, subject_zh: str, subject_en: str) -> Provision:
    return Provision(rule, MEASURES_ZH, subject_zh, subject_en)


PROVISIONS: Final[dict[str, Provision]] = {
    p.rule: p
    for p in (
        _measures("R1", "同一统筹区内变更单位", "a new employer within one pooling region"),
        _measures("R2", "职工医保跨统筹区转移", "employee-scheme transfers between regions"),
        _measures("R3", "居民医保跨统筹区转移", "resident-scheme transfers between regions"),
        _measures("R4", "跨制度转移", "transfers between the two schemes"),
        _measures("R5", "不得重复参保、重复享受待遇", "no double enrolment or double benefits"),
        _measures("R6", "转出地中止参保", "suspension of the enrolment at the outgoing region"),
        _measures("R7", "欠费处理", "contribution arrears"),
        _measures("R8", "个人账户状态", "the state of the personal account"),
        _measures("R9", "身份信息核验", "identity checks"),
        _measures("R10", "线上线下申请渠道", "the online and counter channels"),
        _measures("R11", "转入地受理申请", "applications accepted by the incoming agency"),
        _measures("R12", "转出办理时限", "the transfer-out time limit"),
        _measures("R13", "转入办理时限", "the transfer-in time limit"),
        _measures("R14", "转移接续办结时限", "the time limit of the whole transfer"),
        _measures("R15", "转移资金的核对入账", "matching and crediting the remitted balance"),
        _measures("R16", "转出地个人账户清零与资金划转", "clearing the old account and moving it"),
        _measures("R17", "办理进度查询", "progress queries by the person and employer"),
        _measures("R18", "个人账户余额随同转移", "the balance following the transfer"),
        _measures("R19", "个人账户余额支付至本人银行账户", "paying the balance to the person"),
        _measures("R20", "省内转移的个人账户处理", "the balance within one province"),
        _measures("R21", "跨省异地安置退休人员", "retirees resettled in another province"),
        _measures("R22", "职工医保转入居民医保的个人账户", "the balance when moving to residents"),
        _measures("R23", "未接入平台地区的办理", "regions not yet connected to the platform"),
        _measures("R24", "缴费年限累计计算", "adding up contribution years"),
        _measures("R25", "中断缴费3个月以内的待遇衔接", "an interruption of 3 months or less"),
        _measures("R26", "跨制度转换的待遇衔接", "benefits after switching schemes"),
        _measures("R27", "中断超过3个月的待遇等待期", "the waiting period after 4 months or more"),
        _measures("R28", "补缴与滞纳金", "back-payment and late fees"),
    )
}
# Counting a limit follows the general rule on time limits (the day of the event does not
# count): cited beside the limit rules R12-R14 wherever a decision cites its rule.
TIME_LIMIT_COUNTING: Final = Provision(
    "R12-R14", CIVIL_CODE_ZH, "期间计算", "counting time limits", article="第二百零一条"
)


def provision(rule: str) -> Provision | None:
    """The source of ``rule`` ("R12"); for a rule list ("R6-R9", "R6,R7") the first."""
    first = rule.replace("-", ",").split(",")[0].strip()
    return PROVISIONS.get(first)


_COUNTED_LIMITS: Final = frozenset({"R12", "R13", "R14"})


def _counts_a_limit(rule: str) -> bool:
    found = provision(rule)
    return found is not None and found.rule in _COUNTED_LIMITS


def citation_zh(rule: str) -> str:
    """The rule's provision; a time limit (R12-R14) also cites how its days are counted."""
    found = provision(rule)
    if found is None:
        return rule
    if _counts_a_limit(rule):
        counting = TIME_LIMIT_COUNTING
        return f"{found.citation_zh()}；{counting.subject_zh}依据{counting.source_zh}{counting.article}"
    return found.citation_zh()


def citation_en(rule: str) -> str:
    found = provision(rule)
    if found is None:
        return rule
    if _counts_a_limit(rule):
        return f"{found.citation_en()}; days counted under article 201 of the Civil Code"
    return found.citation_en()
