"""`kubectl exec` goes through Envoy's upgrade path (websocket, HTTP/1.1
upstream) to the apiserver, which echoes stdin."""


def test_exec_echoes_stdin(stack, admin_token):
    kc = stack.kubeconfig_for(admin_token, "admin")
    r = stack.run_kubectl("exec", "-i", "web", "--", "cat", kubeconfig=kc, input="hello through envoy\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello through envoy\n"
    execs = [rec for rec in stack.recorded() if rec["path"].endswith("/pods/web/exec")]
    assert execs and execs[-1]["status"] == 101
    assert execs[-1]["user"]["username"] == "banyan:alice@example.com"


def test_exec_needs_rbac(stack):
    r = stack.run_kubectl("exec", "-i", "web", "--", "cat", input="x\n")
    assert r.returncode != 0
    assert 'cannot get resource "pods/exec"' in r.stderr or 'cannot create resource "pods/exec"' in r.stderr, r.stderr


def test_spdy_upgrade_passes_envoy(stack, admin_token):
    # kubectl falls back to SPDY/3.1 against apiservers without websocket
    # support; Envoy must let that upgrade through to the apiserver (the
    # stand-in itself then declines SPDY, with its own Status body).
    before = len(stack.recorded())
    status, body, _ = stack.envoy_request(
        "POST",
        "/api/v1/namespaces/default/pods/web/exec?command=cat&stdin=true&stdout=true",
        [
            ("authorization", f"Bearer {admin_token}"),
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ],
        body=b"",
    )
    assert status == 400, body
    assert b"websockets only" in body
    reached = [r for r in stack.recorded()[before:] if r["path"].endswith("/pods/web/exec")]
    assert reached and reached[-1]["status"] == 400
