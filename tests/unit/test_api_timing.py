"""API answer times (ledgernode.api.timing) over the fake NodeService: every answer is
timed under its route template and method, error answers too, with bounded labels."""

from __future__ import annotations

from ledgernode.api import REQUEST_SECONDS, request_histogram
from ledgernode.api.timing import OTHER_METHOD, UNMATCHED_ROUTE
from tests.fixtures import Net
from tests.unit.api_fake import MSGPACK, FakeNode, notarize, rid, serve


def count(hist_text: str, route: str, method: str) -> int:
    prefix = f'ledgernode_api_request_seconds_count{{route="{route}",method="{method}"}} '
    lines = [line for line in hist_text.splitlines() if line.startswith(prefix)]
    return int(lines[0].removeprefix(prefix)) if lines else 0


async def test_requests_are_timed_by_route_template_and_method(node: FakeNode, net: Net) -> None:
    seconds = request_histogram()
    async with serve(node, request_seconds=seconds) as client:
        raw = notarize(net, "timed")
        assert (await client.post("/v1/records", data=raw, headers=MSGPACK)).status == 202
        for label in ("a", "b", "c"):  # three raw paths, one template; 404s are timed too
            assert (await client.get(f"/v1/records/{rid(notarize(net, label), net)}")).status == 404
        assert (await client.get("/v1/records/not-hex")).status == 400
        for path in ("/nothing/here", "/x/y/z", "/v1/records/a/b/c/d"):
            assert (await client.get(path)).status == 404
        assert (await client.request("PROPFIND", "/healthz")).status == 405
        assert (await client.get("/healthz")).status == 200
    text = seconds.render()
    assert count(text, "/v1/records", "POST") == 1
    assert count(text, "/v1/records/{id}", "GET") == 4
    assert count(text, UNMATCHED_ROUTE, "GET") == 3
    assert count(text, "/healthz", "GET") == 1
    # a 405 matched no route for its method; the method is a client's word, so bounded
    assert count(text, UNMATCHED_ROUTE, OTHER_METHOD) == 1
    routes = {line.split('route="')[1].split('"')[0] for line in text.splitlines() if 'route="' in line}
    assert routes == {"/v1/records", "/v1/records/{id}", "/healthz", UNMATCHED_ROUTE}
    # every request is in +Inf, and the buckets never decrease
    buckets = [int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('ledgernode_api_request_seconds_bucket{route="/v1/records/{id}",method="GET"')]
    assert buckets == sorted(buckets) and buckets[-1] == 4


async def test_make_app_without_a_histogram_times_into_its_own(node: FakeNode) -> None:
    async with serve(node) as client:
        assert (await client.get("/healthz")).status == 200
        assert count(client.server.app[REQUEST_SECONDS].render(), "/healthz", "GET") == 1
