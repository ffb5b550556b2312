"""Roles and permissions: who may do what inside a tenant (seed 002 §7), deny by default.

The matrix is a chain — every role holds all the permissions of the roles below it — so an API key's
role ceiling is simply the lower of the two roles (``cap``). ``docs/security.md`` is generated from
``MATRIX`` (``python -m imts.api.docs``), so the document cannot drift from the code.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

Role = Literal["admin", "researcher", "developer", "viewer"]
# Highest first: the order that ``cap`` and role ceilings use.
ROLES: tuple[Role, ...] = get_args(Role)


class Permission(StrEnum):
    """One action a role may be allowed inside a tenant (the seed's nine, plus three the API needs)."""

    DATASET_UPLOAD = "upload_dataset"
    DATASET_VIEW = "view_dataset"
    DATASET_DELETE = "delete_dataset"
    MODEL_TRAIN = "train_model"
    MODEL_DEPLOY = "deploy_model"
    MODEL_DELETE = "delete_model"
    USERS_MANAGE = "manage_users"
    METRICS_VIEW = "view_metrics"
    RESOURCES_MANAGE = "manage_resources"
    # Not in the seed's list; needed to serve tenants, projects and the audit log.
    PROJECT_VIEW = "view_project"
    PROJECT_MANAGE = "manage_projects"
    AUDIT_VIEW = "view_audit"


DESCRIPTIONS: dict[Permission, tuple[str, str]] = {
    Permission.DATASET_UPLOAD: ("upload, import and transform datasets", "上传、导入和处理数据集"),
    Permission.DATASET_VIEW: (
        "view datasets, versions, rows and statistics",
        "查看数据集、版本、数据行和统计",
    ),
    Permission.DATASET_DELETE: ("delete datasets and versions", "删除数据集和版本"),
    Permission.MODEL_TRAIN: ("submit training, evaluation and other jobs", "提交训练、评估等任务"),
    Permission.MODEL_DEPLOY: ("promote and deploy model versions", "发布和部署模型版本"),
    Permission.MODEL_DELETE: ("delete model versions", "删除模型版本"),
    Permission.USERS_MANAGE: ("add, change and remove the tenant's members", "添加、修改和移除租户成员"),
    Permission.METRICS_VIEW: ("view runs, metrics, jobs and reports", "查看运行、指标、任务和报告"),
    Permission.RESOURCES_MANAGE: ("manage the pool and quotas", "管理资源池和配额"),
    Permission.PROJECT_VIEW: ("see the tenant's projects and members", "查看租户的项目和成员"),
    Permission.PROJECT_MANAGE: ("create projects", "创建项目"),
    Permission.AUDIT_VIEW: ("read and export the tenant's audit log", "查看和导出租户的审计日志"),
}

_VIEWER = frozenset({Permission.DATASET_VIEW, Permission.METRICS_VIEW, Permission.PROJECT_VIEW})
_DEVELOPER = _VIEWER | {Permission.MODEL_DEPLOY}
_RESEARCHER = _DEVELOPER | {
    Permission.DATASET_UPLOAD,
    Permission.DATASET_DELETE,
    Permission.MODEL_TRAIN,
    Permission.MODEL_DELETE,
}
MATRIX: dict[Role, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "researcher": frozenset(_RESEARCHER),
    "developer": frozenset(_DEVELOPER),
    "viewer": _VIEWER,
}


def allowed(role: Role, perm: Permission) -> bool:
    """Whether ``role`` holds ``perm`` (unknown roles hold nothing)."""
    return perm in MATRIX.get(role, frozenset())


def cap(role: Role, ceiling: Role | None) -> Role:
    """``role`` limited by an API key's ``ceiling``: the lower of the two."""
    if ceiling is None:
        return role
    return max(role, ceiling, key=ROLES.index)


def parse_role(value: str, where: str = "role") -> Role:
    """``value`` as a role, or an ``InputError`` naming the field and the roles there are."""
    from imts.core.errors import InputError

    if value not in ROLES:
        raise InputError(f"unknown role '{value}' (one of: {', '.join(ROLES)})", field=where)
    return value  # type: ignore[return-value]
