"""Projects over JSON."""

import uuid

from fastapi import APIRouter, Query

from server.auth.deps import AdminPrincipal, CurrentPrincipal
from server.db import SessionDep
from server.errors import error_responses
from server.projects import lifecycle, service
from server.projects.schemas import (
    Deleted,
    MemberAdd,
    MemberRead,
    MemberUpdate,
    ProjectCreate,
    ProjectProgress,
    ProjectRead,
    ProjectUpdate,
    QualificationUpdate,
)

router = APIRouter(tags=["projects"])


@router.get("/projects", response_model=list[ProjectRead])
async def list_projects(principal: CurrentPrincipal, session: SessionDep) -> object:
    """Projects shared with the caller (all of them for admins)."""
    return await service.list_accessible(session, principal)


@router.post("/projects", response_model=ProjectRead, status_code=201, responses=error_responses(409))
async def create_project(body: ProjectCreate, admin: AdminPrincipal, session: SessionDep) -> object:
    """Create a labeling project."""
    return await service.create(session, body, actor=admin.user)


@router.get("/projects/{project_id}", response_model=ProjectRead)
async def get_project(project_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> object:
    """One project's settings."""
    return await service.get_accessible(session, principal, project_id)


@router.patch("/projects/{project_id}", response_model=ProjectRead, responses=error_responses(409))
async def update_project(
    project_id: uuid.UUID, body: ProjectUpdate, admin: AdminPrincipal, session: SessionDep
) -> object:
    """Change settings, pause (`is_active: false`) or resume a project, archive (`archived: true`) or unarchive it."""
    project = await service.get_accessible(session, admin, project_id)
    return await service.update_project(session, project, body, actor=admin.user)


@router.delete("/projects/{project_id}", response_model=Deleted)
async def delete_project(
    project_id: uuid.UUID,
    admin: AdminPrincipal,
    session: SessionDep,
    confirm: str | None = Query(default=None, max_length=200, description="The project's name, typed to confirm."),
) -> object:
    """Delete the project's batches, items, assignments and judgments; export manifests and the audit log are
    kept. Without `confirm` (the project's name) it refuses with 422, naming what would go."""
    project = await service.get_accessible(session, admin, project_id)
    removed = await lifecycle.delete_project(session, project, confirm=confirm, actor=admin.user)
    return lifecycle.deleted_result("project", project.name, removed)


@router.get("/projects/{project_id}/progress", response_model=ProjectProgress)
async def project_progress(project_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> object:
    """Items, completed items, judgments and live leases."""
    return await service.progress(session, await service.get_accessible(session, principal, project_id))


@router.get("/projects/{project_id}/members", response_model=list[MemberRead])
async def list_members(project_id: uuid.UUID, admin: AdminPrincipal, session: SessionDep) -> object:
    """Who the project is shared with."""
    return await service.list_members(session, await service.get_accessible(session, admin, project_id))


@router.post("/projects/{project_id}/members", status_code=204)
async def add_member(project_id: uuid.UUID, body: MemberAdd, admin: AdminPrincipal, session: SessionDep) -> None:
    """Share the project with a user."""
    project = await service.get_accessible(session, admin, project_id)
    await service.add_member(session, project, body.user_id, actor=admin.user)


@router.delete("/projects/{project_id}/members/{user_id}", status_code=204)
async def remove_member(project_id: uuid.UUID, user_id: uuid.UUID, admin: AdminPrincipal, session: SessionDep) -> None:
    """Stop sharing the project with a user."""
    project = await service.get_accessible(session, admin, project_id)
    await service.remove_member(session, project, user_id, actor=admin.user)


@router.patch("/projects/{project_id}/members/{user_id}", response_model=MemberRead)
async def update_member(
    project_id: uuid.UUID, user_id: uuid.UUID, body: MemberUpdate, admin: AdminPrincipal, session: SessionDep
) -> object:
    """Suspend a member in this project (their leases end at once) or reinstate them; set or clear their group."""
    project = await service.get_accessible(session, admin, project_id)
    await service.update_member(session, project, user_id, body, actor=admin.user)
    return next(m for m in await service.list_members(session, project) if m.user_id == user_id)


@router.post(
    "/projects/{project_id}/members/{user_id}/qualification",
    response_model=MemberRead,
    responses=error_responses(409),
)
async def update_qualification(
    project_id: uuid.UUID, user_id: uuid.UUID, body: QualificationUpdate, admin: AdminPrincipal, session: SessionDep
) -> object:
    """Admit a member without (passing) the qualification round, or let them try a new round."""
    project = await service.get_accessible(session, admin, project_id)
    await service.set_qualification(session, project, user_id, body, actor=admin.user)
    return next(m for m in await service.list_members(session, project) if m.user_id == user_id)
