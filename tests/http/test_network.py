"""Proxies, TLS and compressed answers on the default path, against real loopback servers.

Every test runs over the default transport (``"auto"``: the direct aiohttp path) and
over httpcore (``transport="httpx"``) and expects the same: the network options mean
what they mean in httpx, whichever path carries the requests.  The proxy is a real
forwarding proxy (``tests/support/proxy.py``) that counts what it carried; the TLS
server is the fault server with a certificate of a throwaway CA (trustme).
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import ssl
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.http.test_secrets import leaks
from tests.support.faults import Fault, FaultServer, refused_url
from tests.support.library import LIBRARY
from tests.support.proxy import ForwardingProxy
from vortext_async import (
    ConfigurationError,
    ConnectError,
    RetryPolicy,
    VortextClient,
    VortextError,
    aiohttp_transport,
)

trustme = pytest.importorskip("trustme")

NO_RETRY = RetryPolicy.no_retries()
TRANSPORTS = ["auto", "httpx"]
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
SECRET = "pr0xy-Pa55word"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy of the machine running the tests: each test sets its own."""
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def client(transport: str, base_url: str, **options: Any) -> VortextClient:
    options.setdefault("retry", NO_RETRY)
    options.setdefault("http_library", LIBRARY)
    return VortextClient("acme", "s3cr3t", base_url=base_url, transport=transport, **options)  # type: ignore[arg-type]


def carried_to(proxy: ForwardingProxy) -> list[str]:
    """What the proxy carried, as ``METHOD target``."""
    return [f"{c.method} {c.target}" for c in proxy.carried]


# -- which path ---------------------------------------------------------------------------


def test_the_default_is_the_direct_path(default_transport: str) -> None:
    assert VortextClient("acme", "s3cr3t").transport == default_transport
    assert VortextClient("acme", "s3cr3t", transport="aiohttp").transport == "aiohttp"
    assert VortextClient("acme", "s3cr3t", transport="httpx").transport == "httpx"
    mine = aiohttp_transport()
    assert VortextClient("acme", "s3cr3t", transport=mine).transport == "custom"


def test_a_socks_proxy_takes_httpcore_or_fails_at_construction() -> None:
    socks = "socks5://127.0.0.1:1080"
    with pytest.raises(ConfigurationError, match="SOCKS"):
        VortextClient("acme", "s3cr3t", transport="aiohttp", proxy=socks)
    if importlib.util.find_spec("socksio") is None:
        with pytest.raises(ConfigurationError, match="socksio"):
            VortextClient("acme", "s3cr3t", proxy=socks)
    else:
        assert VortextClient("acme", "s3cr3t", proxy=socks).transport == "httpx"


@pytest.mark.parametrize("option", ["proxy", "verify", "cert", "trust_env"])
def test_network_options_go_to_a_handed_in_client(option: str, httplib: Any) -> None:
    value = {"proxy": "http://127.0.0.1:3128", "verify": False, "cert": "c.pem"}.get(option, False)
    with pytest.raises(ConfigurationError, match=f"give {option} to your http_client"):
        VortextClient("acme", "s3cr3t", http_client=httplib.AsyncClient(), **{option: value})


def test_network_options_go_to_a_transport_object() -> None:
    with pytest.raises(ConfigurationError, match="give proxy to your transport object"):
        VortextClient("acme", "s3cr3t", transport=aiohttp_transport(), proxy="http://p:1")


# -- proxies -------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_proxy_from_the_environment_carries_the_requests(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ForwardingProxy() as proxy, FaultServer() as server:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with client(transport, server.url) as vortext:
            await vortext.send_sms("+33611272727", "via the proxy")
            await vortext.get_sms("m-1")
    assert carried_to(proxy) == [f"POST {server.url}/sms", f"GET {server.url}/sms/m-1"]
    assert [r.method for r in server.requests] == ["POST", "GET"]
    assert server.requests[0].message == "via the proxy"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_proxy_is_honoured(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with ForwardingProxy() as proxy, FaultServer() as server:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        async with client(transport, server.url) as vortext:
            await vortext.send_sms("+33611272727", "direct")
    assert proxy.carried == []
    assert server.processed_for("direct") == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_trust_env_false_ignores_the_environment(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ForwardingProxy() as proxy, FaultServer() as server:
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        async with client(transport, server.url, trust_env=False) as vortext:
            await vortext.send_sms("+33611272727", "direct")
    assert proxy.carried == []
    assert server.processed_for("direct") == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_explicit_proxy_wins_over_the_environment(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ForwardingProxy() as proxy, FaultServer() as server:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # as in httpx: ignored once proxy= is given
        async with client(transport, server.url, proxy=proxy.url) as vortext:
            await vortext.send_sms("+33611272727", "via the proxy")
    assert carried_to(proxy) == [f"POST {server.url}/sms"]
    assert server.processed_for("via the proxy") == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_proxy_credentials_reach_the_proxy_only(transport: str) -> None:
    async with ForwardingProxy(credentials=("robot", SECRET)) as proxy, FaultServer() as server:
        proxy_url = proxy.url_with("robot", SECRET)
        async with client(transport, server.url, proxy=proxy_url) as vortext:
            await vortext.send_sms("+33611272727", "authorized")
            shown = [repr(vortext), str(vortext.__dict__)]
    assert [c.authorized_as for c in proxy.carried] == [f"robot:{SECRET}"]
    assert proxy.refused == 0
    assert "proxy-authorization" not in server.requests[0].headers
    assert not [text for text in shown if SECRET in text]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_proxy_credentials_never_show_in_errors_logs_or_frames(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="vortext_async")
    with refused_url() as url:  # the proxy is not there: every attempt fails to connect
        proxy_url = url.replace("http://", f"http://robot:{SECRET}@")
        retry = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.001)
        async with client(transport, "http://api.example", proxy=proxy_url, retry=retry) as vortext:
            with pytest.raises(ConnectError) as caught:
                await vortext.send_sms("+33611272727", "never sent")
    error = caught.value
    assert error.certainly_not_sent
    assert SECRET not in f"{error!s} {error!r} {error.__cause__!s} {error.__cause__!r}"
    assert SECRET not in caplog.text
    assert "attempt 1 failed" in caplog.text  # the retry was logged, without the secret
    assert leaks(error, secrets=(SECRET,), least_frames=3) == []


def test_the_blocking_client_takes_the_network_options() -> None:
    from vortext_async.sync import VortextClient as BlockingClient

    proxy = f"http://robot:{SECRET}@127.0.0.1:3128"
    with BlockingClient("acme", "s3cr3t", proxy=proxy, verify=False, trust_env=False) as blocking:
        shown = f"{blocking!r} {vars(blocking)!r}"
    assert SECRET not in shown
    with pytest.raises(ConfigurationError, match="SOCKS"):
        BlockingClient("acme", "s3cr3t", transport="aiohttp", proxy="socks5://127.0.0.1:1080")


def test_a_bad_proxy_url_is_refused_without_its_credentials() -> None:
    with pytest.raises(ConfigurationError) as caught:
        VortextClient("acme", "s3cr3t", proxy=f"ftp://robot:{SECRET}@proxy.example:21")
    assert "proxy" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert leaks(caught.value, secrets=(SECRET,), least_frames=1) == []


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_bundle(ca: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def server_tls(ca: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("given", ["path", "context"])
async def test_a_ca_given_by_verify_is_trusted(
    transport: str, given: str, ca: Any, ca_bundle: Path, server_tls: ssl.SSLContext
) -> None:
    verify: Any = str(ca_bundle)
    if given == "context":
        verify = ssl.create_default_context()
        ca.configure_trust(verify)
    async with (
        FaultServer(tls=server_tls) as server,
        client(transport, server.url, verify=verify) as vortext,
    ):
        assert server.url.startswith("https://")
        sent = await vortext.send_sms("+33611272727", "over TLS")
    assert sent.message_id
    assert server.processed_for("over TLS") == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_unknown_ca_is_refused_as_a_failed_certificate_check(
    transport: str, server_tls: ssl.SSLContext
) -> None:
    async with FaultServer(tls=server_tls) as server, client(transport, server.url) as vortext:
        with pytest.raises(ConnectError) as caught:
            await vortext.send_sms("+33611272727", "refused")
    assert "certificate verification failed" in str(caught.value)
    assert caught.value.certainly_not_sent
    assert server.requests == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_ssl_cert_file_is_read_from_the_environment_as_in_httpx(
    transport: str, ca_bundle: Path, server_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``verify=True`` is httpx's: certifi's bundle, or ``SSL_CERT_FILE`` with trust_env."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle))
    async with FaultServer(tls=server_tls) as server:
        async with client(transport, server.url) as vortext:
            await vortext.send_sms("+33611272727", "trusted by the environment")
        async with client(transport, server.url, trust_env=False) as vortext:
            with pytest.raises(ConnectError, match="certificate verification failed"):
                await vortext.send_sms("+33611272727", "not without it")
    assert server.processed_for("trusted by the environment") == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_https_through_a_proxy_is_a_tunnel(
    transport: str, ca_bundle: Path, server_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        ForwardingProxy(credentials=("robot", SECRET)) as proxy,
        FaultServer(tls=server_tls) as server,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url_with("robot", SECRET))
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # not for https://
        async with client(transport, server.url, verify=str(ca_bundle)) as vortext:
            await vortext.send_sms("+33611272727", "tunnelled")
    [connect] = proxy.carried
    assert (connect.method, connect.target) == ("CONNECT", f"127.0.0.1:{server.port}")
    assert connect.authorized_as == f"robot:{SECRET}"
    assert server.processed_for("tunnelled") == 1
    assert "proxy-authorization" not in server.requests[0].headers


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_https_proxy_is_verified_with_verify(
    transport: str, ca: Any, server_tls: ssl.SSLContext
) -> None:
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    async with ForwardingProxy(tls=server_tls) as proxy, FaultServer() as server:
        assert proxy.url.startswith("https://")
        async with client(transport, server.url, proxy=proxy.url, verify=trusted) as vortext:
            await vortext.send_sms("+33611272727", "via a TLS proxy")
    assert carried_to(proxy) == [f"POST {server.url}/sms"]
    assert server.processed_for("via a TLS proxy") == 1


@pytest.fixture
def client_cert_files(ca: Any, tmp_path: Path) -> tuple[str, str]:
    issued = ca.issue_cert("robot@acme.example")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    for blob in issued.cert_chain_pems:
        with cert.open("ab") as out:
            out.write(blob.bytes())
    issued.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_client_certificate_is_presented(
    transport: str,
    ca: Any,
    ca_bundle: Path,
    server_tls: ssl.SSLContext,
    client_cert_files: tuple[str, str],
) -> None:
    server_tls.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server_tls)
    async with FaultServer(tls=server_tls) as server:
        async with client(
            transport, server.url, verify=str(ca_bundle), cert=client_cert_files
        ) as vortext:
            await vortext.send_sms("+33611272727", "with a certificate")
        async with client(transport, server.url, verify=str(ca_bundle)) as vortext:
            with pytest.raises(VortextError):
                await vortext.send_sms("+33611272727", "without one")
    assert server.processed_for("with a certificate") == 1
    assert server.processed_for("without one") == 0


def test_an_unreadable_ca_bundle_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="verify="):
        VortextClient("acme", "s3cr3t", verify=str(tmp_path / "missing.pem"))


# -- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_answers_are_decoded(transport: str, encoding: str) -> None:
    body = b'{"messageId": "m-packed"}'
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    answer = Fault.answer(201, packed, headers={"Content-Encoding": encoding})
    async with FaultServer(default=answer) as server, client(transport, server.url) as vortext:
        sent = await vortext.send_sms("+33611272727", "hi")
    assert sent.message_id == "m-packed"
    [request] = server.requests
    assert request.headers["accept-encoding"] == "gzip, deflate"
    assert request.headers["user-agent"] == vortext.user_agent
    assert request.headers["user-agent"].startswith("vortext-async/")
