"""A third-party MCP client for the integration suite (crates/switchboard/tests/suite/mcp.rs).

Uses the official Python `mcp` SDK against a running switchboard daemon, over
stdio (`switchboard mcp`, relaying to the daemon) or streamable HTTP (`/mcp`),
in the SDK's default mode (2026-07-28, `server/discover`) or its legacy
`initialize` mode. Argument: a JSON object (see mcp.rs); its `scenario` is
`everything` (the default: every tool and transport check) or `accounts`
(per-account answers when one account needs re-authorization, argument
errors, removal notifications, a clean session close). Every check is an
assertion here; the last line printed is a JSON summary for the Rust side.
"""

import asyncio
import json
import sys

try:
    import httpx2
    import mcp_types as types
    from mcp import Client, StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client
except ImportError as error:  # pragma: no cover
    print(f"the Python `mcp` package is missing ({error}); install it: python3 -m pip install mcp", file=sys.stderr)
    sys.exit(3)

WAIT = 30


def text_of(result):
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


async def run(config):
    transport = config["transport"]
    mode = config["mode"]
    auth = {"Authorization": f"Bearer {config['agent_token']}"}
    admin = httpx2.AsyncClient(base_url=config["url"] + "/api/v1", headers={"Authorization": f"Bearer {config['admin_token']}"})
    changed = asyncio.Event()

    async def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    if transport == "http":
        server = streamable_http_client(config["url"] + "/mcp", http_client=httpx2.AsyncClient(headers=auth, timeout=60))
    else:
        server = StdioServerParameters(
            command=config["binary"],
            args=["mcp"],
            env={"SWITCHBOARD_URL": config["url"], "SWITCHBOARD_TOKEN": config["agent_token"], "SWITCHBOARD_LOG": "warn"},
        )
    summary = {"transport": transport, "mode": mode}

    # The owner (admin token) sees every connection: adding one announces
    # its tools without a restart.
    if transport == "http" and mode == "legacy":
        owner_changed = asyncio.Event()

        async def on_owner_message(message):
            if isinstance(message, types.ToolListChangedNotification):
                owner_changed.set()

        owner_server = streamable_http_client(
            config["url"] + "/mcp",
            http_client=httpx2.AsyncClient(headers={"Authorization": f"Bearer {config['admin_token']}"}, timeout=60),
        )
        async with Client(owner_server, mode=mode, message_handler=on_owner_message, read_timeout_seconds=WAIT) as owner:
            names = {tool.name for tool in (await owner.list_tools()).tools}
            assert "system_log" not in names, sorted(names)
            reply = await admin.post("/connections", json={"connector": "system", "label": "added-while-listening"})
            assert reply.status_code == 201, reply.text
            await asyncio.wait_for(owner_changed.wait(), WAIT)
            names = {tool.name for tool in (await owner.list_tools(cache_mode="refresh")).tools}
            assert "system_log" in names, sorted(names)
        summary["list_changed_on_add"] = True
    async with Client(server, mode=mode, message_handler=on_message, read_timeout_seconds=WAIT) as client:
        summary["protocol_version"] = client.protocol_version
        names = {tool.name for tool in (await client.list_tools()).tools}
        for expected in ["list_connections", "connect", "job_status", "upload_media", "x_post", "x_search_recent", "x_delete", "echo_say"]:
            assert expected in names, f"{expected} missing from {sorted(names)}"
        assert "obs_set_scene" not in names, "no OBS connection is in scope: its tools are hidden"
        x_post = next(t for t in (await client.list_tools()).tools if t.name == "x_post")
        assert "text" in x_post.input_schema["properties"] and "account" in x_post.input_schema["properties"]

        listed = await client.call_tool("list_connections", {})
        labels = sorted(c["label"] for c in listed.structured_content["connections"])
        assert config["x_out"] not in labels, labels

        # Zero questions: no account named, every enabled X account in scope (one).
        posted = await client.call_tool("x_post", {"text": f"hello from {transport} {mode}"})
        assert not posted.is_error, text_of(posted) or posted
        results = posted.structured_content["results"]
        assert len(results) == 1, results
        assert results[0]["account"] == config["x_in"] and results[0]["state"] == "succeeded", results
        summary["post_ids"] = [results[0]["result"]["id"]]

        status = await client.call_tool("job_status", {"job_id": results[0]["job_id"]})
        assert status.structured_content["state"] == "succeeded", status

        # Out of scope: an account the token may not use, and a hidden tool.
        refused = await client.call_tool("x_post", {"text": "not mine", "account": config["x_out"]})
        assert refused.is_error and "may use" in text_of(refused), text_of(refused)
        hidden = await client.call_tool("obs_set_scene", {"scene": "Live"})
        assert hidden.is_error and "none is in this token's scope" in text_of(hidden), text_of(hidden)

        # Bad input names the field.
        wrong = await client.call_tool("x_post", {"text": 5})
        assert wrong.is_error and "`text`" in text_of(wrong), text_of(wrong)
        missing = await client.call_tool("x_delete", {})
        assert missing.is_error and "`id`" in text_of(missing), text_of(missing)
        missing = await client.call_tool("job_status", {})
        assert missing.is_error and "`job_id`" in text_of(missing), text_of(missing)
        bad_account = await client.call_tool("x_post", {"text": "x", "account": 7})
        assert bad_account.is_error and "`account`" in text_of(bad_account), text_of(bad_account)

        # The tool list follows the connections, announced without a restart.
        async def remove_echo():
            reply = await admin.delete(f"/connections/{config['echo_id']}")
            assert reply.status_code == 204, reply.text

        if mode == "legacy":
            await remove_echo()
            await asyncio.wait_for(changed.wait(), WAIT)
        else:
            async with client.listen(tools_list_changed=True) as subscription:
                await remove_echo()
                event = await asyncio.wait_for(subscription.__anext__(), WAIT)
                summary["event"] = str(type(event).__name__)
        names = {tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools}
        assert "echo_say" not in names, sorted(names)
        assert "x_post" in names
        summary["list_changed"] = True

        # A revoked token is refused on its next request.
        reply = await admin.delete(f"/agents/{config['agent_id']}")
        assert reply.status_code == 204, reply.text
        try:
            after = await client.call_tool("list_connections", {})
        except Exception as error:  # the transport or the server refused
            summary["revoked"] = f"{type(error).__name__}: {error}"
        else:
            raise AssertionError(f"a revoked token still works: {after}")
    print(json.dumps(summary))


async def accounts(config):
    """The owner over legacy streamable HTTP: a post on two X accounts, one
    of which needs re-authorization; argument errors; a removed connection."""
    admin = httpx2.AsyncClient(base_url=config["url"] + "/api/v1", headers={"Authorization": f"Bearer {config['admin_token']}"})
    changed = asyncio.Event()

    async def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    server = streamable_http_client(
        config["url"] + "/mcp",
        http_client=httpx2.AsyncClient(headers={"Authorization": f"Bearer {config['admin_token']}"}, timeout=60),
    )
    summary = {}
    async with Client(server, mode="legacy", message_handler=on_message, read_timeout_seconds=WAIT) as client:
        # One account posts, the other answers at once: reconnect it.
        posted = await client.call_tool("x_post", {"text": "to both", "connections": [config["x_ok"], config["x_reauth"]]})
        assert not posted.is_error, text_of(posted) or posted
        results = {r["account"]: r for r in posted.structured_content["results"]}
        ok, reauth = results[config["x_ok"]], results[config["x_reauth"]]
        assert ok["state"] == "succeeded", ok
        summary["post_id"] = ok["result"]["id"]
        assert reauth["state"] == "needs_reauth", reauth
        assert reauth["error"].startswith("needs_reauth: reconnect this account"), reauth
        assert reauth["queued"] is False and "job_id" not in reauth, reauth
        assert reauth["authorize_url"].startswith("http"), reauth
        summary["authorize_url"] = reauth["authorize_url"]

        # Only the account that needs re-authorization: an error, at once.
        alone = await client.call_tool("x_post", {"text": "only there", "account": config["x_reauth"]})
        assert alone.is_error, alone
        assert alone.structured_content["results"][0]["state"] == "needs_reauth", alone

        # Argument errors name the argument.
        unknown = await client.call_tool("x_post", {"text": "hi", "account": config["x_ok"], "colour": "red"})
        assert unknown.is_error and "`colour`" in text_of(unknown), text_of(unknown)
        assert "anyOf" not in text_of(unknown) and "`params`" not in text_of(unknown), text_of(unknown)
        missing = await client.call_tool("x_post", {})
        assert missing.is_error and "`text`" in text_of(missing), text_of(missing)
        assert "anyOf" not in text_of(missing), text_of(missing)
        summary["argument_errors"] = [text_of(unknown), text_of(missing)]

        # A removed connection is announced at once (the periodic recheck is
        # set to an hour by the test).
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "echo_say" in names, sorted(names)
        reply = await admin.delete(f"/connections/{config['echo_id']}")
        assert reply.status_code == 204, reply.text
        await asyncio.wait_for(changed.wait(), WAIT)
        names = {tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools}
        assert "echo_say" not in names, sorted(names)
        summary["list_changed"] = True
    # Leaving the block closed the session (HTTP DELETE); the SDK warns on
    # stderr if the answer is not what it expects.
    print(json.dumps(summary))


if __name__ == "__main__":
    config = json.loads(sys.argv[1])
    if config.get("scenario") == "accounts":
        asyncio.run(accounts(config))
    else:
        asyncio.run(run(config))
