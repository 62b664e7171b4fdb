"""The incoming agency's process: the HTTP API integrators submit applications to, the
operations page and the public progress page, and the Kafka entry point for platform
documents coming back from outgoing agencies. Wiring only: the routes are routes.py's,
public.py's, certificates.py's and services/ops/'s, the use cases applications.py's,
cases.py's and clerk_actions.py's, the inbox inbox.py's."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.app_factory import build_agency_app
from services.common.bootstrap import Service, build_service
from services.common.throttle import LoginThrottle
from services.incoming_agency.applications import SubmitApplication
from services.incoming_agency.cases import CaseCommands
from services.incoming_agency.certificates import LoadOfflineCertificate, create_certificate_router
from services.incoming_agency.clerk_actions import PerformClerkAction
from services.incoming_agency.inbox import IncomingInbox, IncomingWorkflows
from services.incoming_agency.progress import ProgressRecords
from services.incoming_agency.public import create_public_router
from services.incoming_agency.records import IncomingRecordsSql
from services.incoming_agency.routes import (
    create_application_router,
    create_case_router,
    create_clerk_action_router,
)
from services.incoming_agency.tables import INCOMING_TABLES
from services.ops.dashboard import create_ops_router
from services.ops.sessions import OpsSessions
from workflows.incoming.workflows import incoming_workflow_id


def create_app(service: Service | None = None) -> FastAPI:
    service = service or build_service("incoming", INCOMING_TABLES)
    progress_records = ProgressRecords(service.engine)
    # The Temporal client is the agency app's, connected when the app starts.
    workflows = IncomingWorkflows(
        lambda: agency.temporal(), service.settings.task_queue("incoming")
    )
    inbox = IncomingInbox(IncomingRecordsSql(service.engine), workflows)
    agency = build_agency_app(
        service,
        title="Incoming agency (转入地经办机构) API",
        description="Submit and follow transfers of basic medical insurance between regions.",
        route=inbox.route,
        workflow_id=incoming_workflow_id,
    )
    app = agency.app
    cases = CaseCommands(service.repository, workflows.signal_case)
    perform_action = PerformClerkAction(cases)

    submit = SubmitApplication(service, workflows.start_case, progress_records)
    app.include_router(create_application_router(service, submit, agency.any_caller))
    app.include_router(create_case_router(cases, agency.any_caller, agency.a_clerk))
    # The operations page's sign-in sessions and failed-login counts live in this process.
    app.state.ops_sessions, app.state.ops_throttle = OpsSessions(), LoginThrottle()
    app.include_router(
        create_ops_router(service, perform_action, app.state.ops_sessions, app.state.ops_throttle)
    )
    # R17: the person's and the employer's own view, without a key, throttled like sign-in.
    app.state.progress_throttle = LoginThrottle()
    app.include_router(create_public_router(service, progress_records, app.state.progress_throttle))
    app.include_router(create_clerk_action_router(perform_action, agency.a_clerk))
    # R10/R23: the insurance certificate the person brings, loaded at the counter.
    load_certificate = LoadOfflineCertificate(service, workflows.signal_case)
    app.include_router(create_certificate_router(load_certificate, agency.a_clerk))
    return app
