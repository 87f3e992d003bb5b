"""The pytest plugin (smtp_server, smtp_server_factory, smtp_messages), tested with pytester."""

from importlib import metadata


def _plugin_args():
    registered = any(ep.value == "smtpsend.pytest_plugin" for ep in metadata.entry_points(group="pytest11"))
    return [] if registered else ["-p", "smtpsend.pytest_plugin"]


def test_fixtures_in_a_users_test_suite(pytester):
    pytester.makepyfile(test_app="""
        import mimecompose, smtpsend

        def signup(address, host, port):          # "the user's code" that sends mail
            part = mimecompose.compose(f"Welcome, {address}!", header=[
                ("From", "noreply@example.com"), ("To", address), ("Subject", "Welcome")])
            smtpsend.sendmessage(part, servers=[host], ports=[port])

        def test_signup_sends_a_welcome(smtp_server, smtp_messages):
            signup("ann@example.com", smtp_server.host, smtp_server.port)
            [mail] = smtp_server.messages
            assert mail.envelope.recipients == ["ann@example.com"]
            assert smtp_messages[0].getheader("Subject") == ["Welcome"]
            assert len(smtp_messages) == 1

        def test_refusals_with_the_factory(smtp_server_factory):
            server = smtp_server_factory(responses={"RCPT": (550, "5.1.1 no such user")})
            try:
                signup("nobody@example.com", server.host, server.port)
            except smtpsend.RecipientsRefused as exc:
                assert exc.rejected[0].status == "5.1.1"
            else:
                raise AssertionError("expected a refusal")

        def test_each_test_gets_a_fresh_server(smtp_server):
            assert smtp_server.messages == []
    """)
    result = pytester.runpytest(*_plugin_args())
    result.assert_outcomes(passed=3)


def test_factory_takes_the_capture_servers_bounds(pytester):
    pytester.makepyfile(test_bounds="""
        import mimecompose, smtpsend

        def test_ring_buffer(smtp_server_factory):
            server = smtp_server_factory(keep=1, bare_lf="refuse", idle_timeout=30)
            part = mimecompose.compose("x", header=[("From", "a@example.com"), ("To", "b@example.com")])
            for _ in range(2):
                smtpsend.sendmessage(part, servers=[server.host], ports=[server.port])
            assert len(server.messages) == 1 and server.received == 2
    """)
    result = pytester.runpytest(*_plugin_args())
    result.assert_outcomes(passed=1)
