"""RBAC on the apiserver decides with the mapped identity: the guide's pod
reader lists pods and is refused services with the apiserver's message."""


def test_pod_reader_lists_pods(stack):
    r = stack.run_kubectl("get", "pods")
    assert r.returncode == 0, r.stderr
    assert "web" in r.stdout and "Running" in r.stdout


def test_pod_reader_is_forbidden_services(stack):
    r = stack.run_kubectl("get", "services")
    assert r.returncode != 0
    assert (
        'Error from server (Forbidden): services is forbidden: User "banyan:alice@example.com" '
        'cannot list resource "services" in API group "" in the namespace "default"'
    ) in r.stderr


def test_cluster_admin_role_lists_services(stack, admin_token):
    kc = stack.kubeconfig_for(admin_token, "admin")
    r = stack.run_kubectl("get", "services", kubeconfig=kc)
    assert r.returncode == 0, r.stderr
    assert "No resources found in default namespace." in r.stderr
