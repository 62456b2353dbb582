"""local.workers: environments that die or overrun are replaced, as Lambda replaces them."""

from __future__ import annotations

import pytest

from local.workers import Environments, InvocationError, InvocationTimeout

pytestmark = pytest.mark.slow


def test_a_dead_or_hung_environment_is_replaced(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "app.py").write_text(
        "import os, time\n"
        "def lambda_handler(event, context):\n"
        "    if event.get('die'): os._exit(1)\n"
        "    if event.get('hang'): time.sleep(60)\n"
        "    return {'pid': os.getpid()}\n"
    )
    with Environments({"PATH": "/usr/bin:/bin"}, size=1, timeout=2) as pool:
        first = pool.invoke(str(fn), "app.lambda_handler", {})["pid"]
        with pytest.raises(InvocationError):
            pool.invoke(str(fn), "app.lambda_handler", {"die": True})
        second = pool.invoke(str(fn), "app.lambda_handler", {})["pid"]
        assert second != first  # a fresh environment took its place
        with pytest.raises(InvocationTimeout):
            pool.invoke(str(fn), "app.lambda_handler", {"hang": True})
        assert pool.invoke(str(fn), "app.lambda_handler", {})["pid"] not in (first, second)
