"""The JSON of the alerting endpoints: alerts, rules, channels, maintenance windows, schedules."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    AnyHttpUrl,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)

from b2c_monitoring.alerting.channels import ChannelKind
from b2c_monitoring.alerting.records import AlertRecord
from b2c_monitoring.alerting.rules import Condition, Rule, Severity
from b2c_monitoring.alerting.schedules import CRON_PATTERN
from b2c_monitoring.api.models import ApiModel
from b2c_monitoring.api.params import Timestamp
from b2c_monitoring.storage.alert_config import ChannelRecord, ScheduleRecord, WindowRecord
from b2c_monitoring.storage.alerts import AlertEvent
from b2c_monitoring.storage.notifications import NotificationView

TenantId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
EmailStr = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


class AlertList(ApiModel):
    items: list[AlertRecord]
    next_cursor: str | None = Field(description="pass as cursor= for the next page; null: last")


class AlertHistoryEntry(ApiModel):
    at: datetime
    event: str = Field(description="fired refired updated acknowledged silenced resolved")
    actor: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, e: AlertEvent) -> AlertHistoryEntry:
        return cls(at=e.at, event=e.event, actor=e.actor, details=e.details)


class NotificationStatus(ApiModel):
    id: str
    channel_id: str
    channel_name: str
    event: str
    state: Literal["pending", "sending", "sent", "failed"] = Field(
        description="failed: given up (a permanent refusal, or still failing at max age)"
    )
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, n: NotificationView) -> NotificationStatus:
        return cls(**n.__dict__)


class AlertDetail(ApiModel):
    alert: AlertRecord
    history: list[AlertHistoryEntry]
    notifications: list[NotificationStatus]


class SilenceRequest(ApiModel):
    duration_s: int = Field(ge=60, le=30 * 86400, description="how long to mute it, in seconds")
    reason: str | None = Field(default=None, max_length=1024)


class AlertRuleIn(ApiModel):
    tenant_id: TenantId | None = Field(
        default=None, description="required when your token sees more than one tenant"
    )
    name: Name
    severity: Severity = Severity.WARNING
    cooldown_s: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="a condition back within this long after its alert resolved reopens it "
        "without paging again",
    )
    enabled: bool = True
    condition: Condition


class AlertRuleOut(ApiModel):
    id: str
    tenant_id: str
    name: str
    kind: str
    severity: Severity
    cooldown_s: int
    enabled: bool
    condition: Condition

    @classmethod
    def of(cls, rule: Rule) -> AlertRuleOut:
        return cls(
            id=rule.id,
            tenant_id=rule.tenant_id,
            name=rule.name,
            kind=rule.kind.value,
            severity=rule.severity,
            cooldown_s=int(rule.cooldown.total_seconds()),
            enabled=rule.enabled,
            condition=rule.condition,
        )


class AlertRuleList(ApiModel):
    items: list[AlertRuleOut]


class ChannelIn(ApiModel):
    model_config = ConfigDict(  # merged with ApiModel's
        # _complete, said in the document
        json_schema_extra={
            "oneOf": [
                {
                    "properties": {
                        "kind": {"enum": [ChannelKind.WEBHOOK.value, ChannelKind.SLACK.value]},
                        "url": {"type": "string"},
                    },
                    "required": ["url"],
                },
                {
                    "properties": {
                        "kind": {"const": ChannelKind.EMAIL.value},
                        "smtpHost": {"type": "string", "minLength": 1},
                        "smtpPort": {"type": "integer"},
                        "mailFrom": {"type": "string"},
                        "mailTo": {"type": "array", "minItems": 1},
                    },
                    "required": ["smtpHost", "smtpPort", "mailFrom", "mailTo"],
                },
            ]
        },
    )

    tenant_id: TenantId | None = None
    name: Name
    kind: ChannelKind
    min_severity: Severity = Severity.INFO
    url: AnyHttpUrl | None = Field(default=None, description="webhook and slack")
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        description="webhook: the HMAC-SHA256 key; email: the SMTP password. Never returned.",
    )
    smtp_host: str | None = Field(default=None, max_length=255)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_username: str | None = Field(default=None, max_length=255)
    smtp_starttls: bool = False
    mail_from: EmailStr | None = None
    mail_to: list[EmailStr] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _complete(self) -> ChannelIn:
        if self.kind in (ChannelKind.WEBHOOK, ChannelKind.SLACK) and self.url is None:
            raise ValueError(f"a {self.kind.value} channel needs url")
        if self.kind is ChannelKind.EMAIL and not (
            self.smtp_host and self.smtp_port and self.mail_from and self.mail_to
        ):
            raise ValueError("an email channel needs smtpHost, smtpPort, mailFrom and mailTo")
        return self

    def config(self) -> dict[str, Any]:
        if self.kind is ChannelKind.EMAIL:
            return {
                "host": self.smtp_host,
                "port": self.smtp_port,
                "username": self.smtp_username,
                "starttls": self.smtp_starttls,
                "from": str(self.mail_from),
                "to": [str(t) for t in self.mail_to],
            }
        return {"url": str(self.url)}


class ChannelOut(ApiModel):
    id: str
    tenant_id: str
    name: str
    kind: ChannelKind
    min_severity: Severity
    enabled: bool
    config: dict[str, Any] = Field(description="without secrets")
    has_secret: bool
    created_at: datetime

    @classmethod
    def of(cls, c: ChannelRecord) -> ChannelOut:
        return cls(
            id=c.id,
            tenant_id=c.tenant_id,
            name=c.name,
            kind=c.kind,
            min_severity=c.min_severity,
            enabled=c.enabled,
            config=c.config,
            has_secret=c.has_secret,
            created_at=c.created_at,
        )


class ChannelList(ApiModel):
    items: list[ChannelOut]


class WindowIn(ApiModel):
    model_config = ConfigDict(  # merged with ApiModel's
        # _one_subject, said in the document
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["serviceName"],
                    "properties": {"serviceName": {"type": "string"}, "jobType": {"type": "null"}},
                },
                {
                    "required": ["jobType"],
                    "properties": {"jobType": {"type": "string"}, "serviceName": {"type": "null"}},
                },
            ]
        },
    )

    tenant_id: TenantId | None = None
    service_name: Name | None = None
    job_type: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    starts_at: Timestamp | None = Field(default=None, description="default: now")
    ends_at: Timestamp = Field(description="after startsAt and in the future")
    reason: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _one_subject(self) -> WindowIn:
        if (self.service_name is None) == (self.job_type is None):
            raise ValueError("give exactly one of serviceName and jobType")
        return self


class WindowOut(ApiModel):
    id: str
    tenant_id: str
    service_name: str | None
    job_type: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    created_by: str
    created_at: datetime
    active: bool

    @classmethod
    def of(cls, w: WindowRecord, now: datetime) -> WindowOut:
        return cls(**w.__dict__, active=w.starts_at <= now < w.ends_at)


class WindowList(ApiModel):
    items: list[WindowOut]


class ScheduleIn(ApiModel):
    tenant_id: TenantId | None = None
    cron: str = Field(
        max_length=128,
        examples=["0 2 * * *"],
        description="five fields (minute hour day-of-month month day-of-week)",
        # the pattern, not pydantic's check: validate() names what is wrong in words
        json_schema_extra={"pattern": CRON_PATTERN},
    )
    timezone: str = Field(
        default="UTC",
        max_length=64,
        examples=["Europe/Berlin"],
        description="an IANA time zone",
        json_schema_extra={"enum": list[JsonValue](sorted(available_timezones()))},
    )
    grace_s: int = Field(default=900, ge=1, le=7 * 86400)


class ScheduleOut(ApiModel):
    tenant_id: str
    job_type: str
    cron: str
    timezone: str
    grace_s: int
    next_expected_at: datetime

    @classmethod
    def of(cls, r: ScheduleRecord, next_at: datetime) -> ScheduleOut:
        s = r.schedule
        return cls(
            tenant_id=r.tenant_id,
            job_type=s.job_type,
            cron=s.cron,
            timezone=s.timezone,
            grace_s=int(s.grace.total_seconds()),
            next_expected_at=next_at,
        )


class ScheduleList(ApiModel):
    items: list[ScheduleOut]
