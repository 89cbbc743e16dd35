"""Login throttling (issue 8, item 3): per account and per address, counted in PostgreSQL."""

import asyncio
import threading

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request

from server import security
from server.app import create_app
from server.auth import throttle
from server.auth.throttle import PURGE_BATCH, client_address
from server.config import settings
from server.models import AuditEvent, LoginFailure
from tests.auth.test_activity import blocked_by
from tests.factories import PASSWORD, create_user
from tests.web.conftest import NONCE

LOGIN = "/api/v1/auth/session"
WRONG = "not the password"
ACCOUNT_REFUSAL = "Too many failed logins for this account; try again in 15 minutes."


async def fail(client: httpx.AsyncClient, email: str, times: int) -> None:
    for _ in range(times):
        response = await client.post(LOGIN, json={"email": email, "password": WRONG})
        assert response.status_code == 401, response.text


@pytest.fixture
async def app_from(app):  # type: ignore[no-untyped-def]
    """A client whose connection comes from the given address (the socket's peer)."""
    clients: list[httpx.AsyncClient] = []

    def make(address: str, application=app) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
        transport = httpx.ASGITransport(app=application, client=(address, 40000))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://testserver"))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


async def addresses(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(LoginFailure.address)))


async def assert_retry_after(response: httpx.Response, session: AsyncSession) -> None:
    """Retry-After is the time until the oldest counted failure leaves the 15-minute window."""
    left = await session.scalar(
        text("SELECT extract(epoch FROM min(failed_at) + interval '15 minutes' - now()) FROM login_failures")
    )
    assert abs(int(response.headers["Retry-After"]) - float(left)) <= 5


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """5 per account, 12 per address (defaults 10 and 50): the same rules with fewer Argon2 checks."""
    monkeypatch.setattr(settings, "login_failures_per_account", 5)
    monkeypatch.setattr(settings, "login_failures_per_address", 12)


class TestAccount:
    async def test_right_password_is_refused_after_ten_wrong_ones(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        user = await create_user(session)
        await fail(client, user.email, 10)
        response = await client.post(LOGIN, json={"email": user.email, "password": PASSWORD})
        assert response.status_code == 429
        assert response.json()["detail"] == ACCOUNT_REFUSAL
        await assert_retry_after(response, session)
        assert "set-cookie" not in response.headers

    @pytest.mark.usefixtures("small_limits")
    async def test_refused_attempts_are_not_checked_or_counted(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        user = await create_user(session)
        await fail(client, user.email, 5)
        for _ in range(5):
            assert (await client.post(LOGIN, json={"email": user.email, "password": WRONG})).status_code == 429
        assert await session.scalar(select(func.count()).select_from(LoginFailure)) == 5

    @pytest.mark.usefixtures("small_limits")
    async def test_the_window_slides(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session)
        await fail(client, user.email, 5)
        # The oldest failure was 11 minutes ago: the refusal ends when it leaves the 15-minute window.
        await session.execute(
            text(
                "UPDATE login_failures SET failed_at = now() - interval '11 minutes' "
                "WHERE id = (SELECT min(id) FROM login_failures)"
            )
        )
        await session.commit()
        response = await client.post(LOGIN, json={"email": user.email, "password": PASSWORD})
        assert response.status_code == 429
        assert response.json()["detail"] == "Too many failed logins for this account; try again in 4 minutes."
        assert 200 <= int(response.headers["Retry-After"]) <= 240
        await session.execute(text("UPDATE login_failures SET failed_at = failed_at - interval '4 minutes'"))
        await session.commit()
        assert (await client.post(LOGIN, json={"email": user.email, "password": PASSWORD})).status_code == 200

    @pytest.mark.usefixtures("small_limits")
    async def test_unknown_email_is_throttled_the_same_way(self, client: httpx.AsyncClient) -> None:
        await fail(client, "ghost@example.com", 5)
        response = await client.post(LOGIN, json={"email": "Ghost@Example.com ", "password": WRONG})
        assert response.status_code == 429
        assert response.json()["detail"] == ACCOUNT_REFUSAL

    @pytest.mark.usefixtures("small_limits")
    async def test_other_accounts_still_log_in(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        victim, other = await create_user(session), await create_user(session)
        await fail(client, victim.email, 5)
        assert (await client.post(LOGIN, json={"email": other.email, "password": PASSWORD})).status_code == 200

    @pytest.mark.usefixtures("small_limits")
    async def test_success_forgets_the_accounts_failures(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        user = await create_user(session)
        await fail(client, user.email, 4)
        assert (await client.post(LOGIN, json={"email": user.email, "password": PASSWORD})).status_code == 200
        await fail(client, user.email, 4)
        assert (await client.post(LOGIN, json={"email": user.email, "password": PASSWORD})).status_code == 200


@pytest.mark.usefixtures("small_limits")
class TestAddress:
    async def test_failures_from_one_address_stop_every_login_from_it(
        self,
        app_from,  # type: ignore[no-untyped-def]
        session: AsyncSession,
    ) -> None:
        user = await create_user(session)
        attacker = app_from("198.51.100.7")
        for n in range(4):  # 3 guesses at each of 4 accounts: under the account limit
            await fail(attacker, f"someone-{n}@example.com", 3)
        response = await attacker.post(LOGIN, json={"email": user.email, "password": PASSWORD})
        assert response.status_code == 429
        assert response.json()["detail"] == "Too many failed logins from your network address; try again in 15 minutes."
        await assert_retry_after(response, session)
        neighbour = app_from("198.51.100.8")
        assert (await neighbour.post(LOGIN, json={"email": user.email, "password": PASSWORD})).status_code == 200

    async def test_logging_into_your_own_account_does_not_reset_the_address(
        self,
        app_from,  # type: ignore[no-untyped-def]
        session: AsyncSession,
    ) -> None:
        own = await create_user(session)
        attacker = app_from("198.51.100.9")
        for n in range(11):
            await fail(attacker, f"someone-{n}@example.com", 1)
        assert (await attacker.post(LOGIN, json={"email": own.email, "password": PASSWORD})).status_code == 200
        await fail(attacker, "someone-11@example.com", 1)
        assert (await attacker.post(LOGIN, json={"email": own.email, "password": PASSWORD})).status_code == 429


class TestClientAddress:
    async def test_forwarded_for_is_ignored_without_a_trusted_proxy(
        self,
        app_from,
        session: AsyncSession,  # type: ignore[no-untyped-def]
    ) -> None:
        client = app_from("10.0.0.1")
        await client.post(
            LOGIN, json={"email": "a@example.com", "password": WRONG}, headers={"X-Forwarded-For": "203.0.113.5"}
        )
        assert await addresses(session) == ["10.0.0.1"]

    async def test_forwarded_for_is_believed_from_the_trusted_proxy_only(
        self,
        app_from,
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
        engine,
        sessionmaker,  # type: ignore[no-untyped-def]
    ) -> None:
        monkeypatch.setattr(settings, "trusted_proxies", "10.0.0.1")
        behind_proxy = create_app(database_url="unused")
        behind_proxy.state.engine, behind_proxy.state.sessionmaker = engine, sessionmaker
        forged = {"X-Forwarded-For": "203.0.113.5, 192.0.2.1"}
        await app_from("10.0.0.1", behind_proxy).post(
            LOGIN, json={"email": "a@example.com", "password": WRONG}, headers=forged
        )
        await app_from("10.0.0.2", behind_proxy).post(
            LOGIN, json={"email": "a@example.com", "password": WRONG}, headers=forged
        )
        # From the proxy: the address it appended (the rightmost), not what the client claimed before it.
        assert sorted(await addresses(session)) == ["10.0.0.2", "192.0.2.1"]

    @pytest.mark.parametrize(
        ("peer", "counted"),
        [
            ("192.0.2.10", "192.0.2.10"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
            ("::ffff:192.0.2.10", "192.0.2.10"),
            ("testclient", "testclient"),
        ],
    )
    def test_ipv6_clients_count_as_their_64(self, peer: str, counted: str) -> None:
        request = Request({"type": "http", "client": (peer, 1), "headers": []})
        assert client_address(request) == counted


class TestAudit:
    async def test_failed_logins_are_audited_without_the_password(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        user = await create_user(session)
        await client.post(LOGIN, json={"email": user.email.upper(), "password": "hunter2-secret"})
        await client.post(LOGIN, json={"email": "ghost@example.com", "password": "hunter2-secret"})
        events = list(await session.scalars(select(AuditEvent).where(AuditEvent.action == "login.failed")))
        assert [(e.target_id, e.data) for e in events] == [
            (user.id, {"email": user.email.lower(), "address": "127.0.0.1", "reason": "wrong email or password"}),
            (None, {"email": "ghost@example.com", "address": "127.0.0.1", "reason": "wrong email or password"}),
        ]
        dump = await session.scalar(text("SELECT string_agg(audit_events::text, ' ') FROM audit_events"))
        assert "hunter2" not in (dump or "")


class TestPageLogin:
    @pytest.mark.usefixtures("small_limits")
    async def test_the_login_form_is_throttled_too(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session)

        async def post(password: str) -> httpx.Response:
            form = await client.get("/login")
            nonce = NONCE.search(form.text)
            assert nonce is not None
            data = {"email": user.email, "password": password, "login_nonce": nonce.group(1), "next": "/"}
            return await client.post("/login", data=data)

        for _ in range(5):
            assert (await post(WRONG)).status_code == 401
        response = await post(PASSWORD)
        assert response.status_code == 429
        await assert_retry_after(response, session)
        assert ACCOUNT_REFUSAL in response.text
        assert settings.session_cookie not in response.headers.get("set-cookie", "")


class TestHashing:
    async def test_passwords_are_checked_off_the_event_loop(
        self, client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        user = await create_user(session)
        threads: list[int] = []
        verify = security.password_hash.verify

        def recording_verify(password: str, hashed: str) -> bool:
            threads.append(threading.get_ident())
            return verify(password, hashed)

        monkeypatch.setattr(security.password_hash, "verify", recording_verify)
        assert (await client.post(LOGIN, json={"email": user.email, "password": PASSWORD})).status_code == 200
        assert (await client.post(LOGIN, json={"email": "ghost@example.com", "password": WRONG})).status_code == 401
        assert len(threads) == 2
        assert threading.get_ident() not in threads  # the test runs on the event loop's thread

    async def test_passwords_are_hashed_off_the_event_loop(
        self, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        threads: list[int] = []
        hash_ = security.password_hash.hash

        def recording_hash(password: str) -> str:
            threads.append(threading.get_ident())
            return hash_(password)

        monkeypatch.setattr(security.password_hash, "hash", recording_hash)
        await create_user(session)
        assert len(threads) == 1
        assert threads[0] != threading.get_ident()


class TestStorage:
    async def test_expired_failures_are_deleted_as_new_ones_come(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await session.execute(
            text(
                "INSERT INTO login_failures (email, address, failed_at) "
                "SELECT 'old@example.com', '192.0.2.1', now() - interval '20 minutes' FROM generate_series(1, 150)"
            )
        )
        await session.commit()
        await fail(client, "new@example.com", 1)
        assert await session.scalar(select(func.count()).select_from(LoginFailure)) == 150 - PURGE_BATCH + 1
        await fail(client, "new@example.com", 1)
        assert await addresses(session) == ["127.0.0.1", "127.0.0.1"]

    async def test_a_login_never_waits_for_another_logins_transaction(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        sessionmaker: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
    ) -> None:
        user = await create_user(session)
        await session.execute(
            text(
                "INSERT INTO login_failures (email, address, failed_at) "
                "SELECT 'old@example.com', '192.0.2.1', now() - interval '20 minutes' FROM generate_series(1, 10)"
            )
        )
        await session.commit()
        async with sessionmaker() as other_login:  # a failure recorded (and old rows purged), not committed yet
            await throttle.record_failure(other_login, email=user.email, address="192.0.2.7")
            pid = await other_login.scalar(text("SELECT pg_backend_pid()"))
            for password, status in ((WRONG, 401), (PASSWORD, 200)):
                request = asyncio.ensure_future(client.post(LOGIN, json={"email": user.email, "password": password}))
                assert not await blocked_by(engine, pid, request)
                assert (await request).status_code == status
            await other_login.rollback()
