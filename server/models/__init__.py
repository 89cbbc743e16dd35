"""Every table, imported here so Alembic and the app see the whole schema."""

from server.models.api_token import ApiToken, Scope
from server.models.assignment import Assignment, AssignmentStatus, SkipReason
from server.models.audit import AuditEvent
from server.models.batch import Batch
from server.models.critique import Critique, CritiqueRating, CritiqueVerdict, Severity
from server.models.export import Export
from server.models.flaw import Flaw, PlantedFlaw
from server.models.item import Candidate, Item, ItemSearch, Prompt, SearchPending
from server.models.judgment import Judgment, JudgmentRevision, SurplusReason
from server.models.login_failure import LoginFailure
from server.models.meta import AssayMeta
from server.models.project import (
    Assistance,
    CritiqueRatings,
    Project,
    ProjectMember,
    QueueMove,
    RationaleRule,
    Scale,
    SubtasksGate,
)
from server.models.quality import QualitySnapshot
from server.models.reward_model import ItemScore, RewardModel
from server.models.user import Role, User, UserKind, UserSession

__all__ = [
    "ApiToken",
    "AssayMeta",
    "Assignment",
    "AssignmentStatus",
    "Assistance",
    "AuditEvent",
    "Batch",
    "Candidate",
    "Critique",
    "CritiqueRating",
    "CritiqueRatings",
    "CritiqueVerdict",
    "Export",
    "Flaw",
    "Item",
    "ItemScore",
    "ItemSearch",
    "Judgment",
    "JudgmentRevision",
    "LoginFailure",
    "PlantedFlaw",
    "Project",
    "ProjectMember",
    "Prompt",
    "QualitySnapshot",
    "QueueMove",
    "RationaleRule",
    "RewardModel",
    "Role",
    "Scale",
    "Scope",
    "SearchPending",
    "Severity",
    "SkipReason",
    "SubtasksGate",
    "SurplusReason",
    "User",
    "UserKind",
    "UserSession",
]
