from enum import StrEnum


class PlanId(StrEnum):
    BASIC = "basic"
    ENTERPRISE = "enterprise"
    FREE = "free"
    PRO = "pro"

    def __str__(self) -> str:
        return str(self.value)
