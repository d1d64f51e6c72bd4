//! The docker-compose example's Envoy files are renders of the shipped
//! templates; they are regenerated here and compared with what is
//! committed. Run with `UPDATE_GOLDEN=1` to rewrite them after changing a
//! template.

use std::path::Path;

use kube_oidc_dev::envoy_config::{ENVOY_TEMPLATE, Placeholders, SDS_TEMPLATE};

#[test]
fn compose_envoy_files_match_a_fresh_render() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("envoy/compose");
    let table = Placeholders::shipped().unwrap();
    for (template, file) in [
        (ENVOY_TEMPLATE, "envoy.yaml"),
        (SDS_TEMPLATE, "sds-tls.yaml"),
    ] {
        let fresh = format!(
            "# Generated from envoy/{file} with the docker-compose values; do not edit.\n{}",
            table.render(template, &table.compose_values()).unwrap()
        );
        let path = dir.join(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
        assert!(
            committed == fresh,
            "{} is stale: run UPDATE_GOLDEN=1 cargo test --test envoy_compose_render_is_current",
            path.display()
        );
    }
}
