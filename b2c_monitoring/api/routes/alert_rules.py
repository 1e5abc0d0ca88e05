"""/api/admin/alert-rules: a tenant's alert rules. Operators manage them (they are on
call for what the rules page about); viewers read them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from b2c_monitoring.alerting.rules import Rule
from b2c_monitoring.api.alert_models import AlertRuleIn, AlertRuleList, AlertRuleOut
from b2c_monitoring.api.deps import AlertConfigDep, Now, Operator, Viewer, target_tenant
from b2c_monitoring.api.problems import responses

router = APIRouter(prefix="/api/admin/alert-rules", tags=["alerts"])

RuleIdPath = Annotated[str, Path(max_length=64)]


@router.get(
    "",
    response_model=AlertRuleList,
    response_model_by_alias=True,
    summary="Alert rules of your tenants",
    responses=responses(401, 403, 422),
)
def list_rules(
    principal: Viewer,
    config: AlertConfigDep,
    tenant: Annotated[list[str] | None, Query(description="repeatable, within your scope")] = None,
) -> AlertRuleList:
    return AlertRuleList(items=[AlertRuleOut.of(r) for r in config.rules(principal.scope(tenant))])


@router.post(
    "",
    status_code=201,
    response_model=AlertRuleOut,
    response_model_by_alias=True,
    summary="Create a rule; condition.kind is one of the rule kinds",
    description="Kinds: job_failed, job_stalled, service_down, latency_above, resource_above, "
    "error_rate_above, component_unhealthy. An unknown kind or field is a 422 naming the "
    "known ones. A rule name is unique within its tenant (409).",
    responses=responses(401, 403, 404, 409, 422),
)
def create_rule(
    body: AlertRuleIn, principal: Operator, config: AlertConfigDep, now: Now
) -> AlertRuleOut:
    rule = Rule(
        id=str(uuid.uuid4()),
        tenant_id=target_tenant(principal, body.tenant_id),
        name=body.name,
        severity=body.severity,
        condition=body.condition,
        cooldown=timedelta(seconds=body.cooldown_s),
        enabled=body.enabled,
    )
    return AlertRuleOut.of(config.create_rule(rule, principal, now))


@router.get(
    "/{rule_id}",
    response_model=AlertRuleOut,
    response_model_by_alias=True,
    summary="One alert rule",
    responses=responses(401, 403, 404, 422),
)
def get_rule(rule_id: RuleIdPath, principal: Viewer, config: AlertConfigDep) -> AlertRuleOut:
    return AlertRuleOut.of(config.rule(rule_id, principal.scope()))


@router.delete(
    "/{rule_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a rule; its open alerts resolve at the next evaluation",
    responses=responses(401, 403, 404, 422),
)
def delete_rule(
    rule_id: RuleIdPath, principal: Operator, config: AlertConfigDep, now: Now
) -> Response:
    config.delete_rule(rule_id, principal, now)
    return Response(status_code=204)
