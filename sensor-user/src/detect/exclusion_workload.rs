//! The workload part of an exclusion: globs on the names the container runtime gave the
//! process's container and pod (`container.image.name`, `orchestrator.namespace`, ...). They are
//! matched against the lineage's container index, which `run` fills when a container's cgroup is
//! first seen and `replay` from the record's `container` lines: no I/O here, so the verdict is
//! the same in both. A container whose names are not known is never excluded by them.

use globset::{GlobBuilder, GlobMatcher};

use super::DetectError;
use crate::{config::Exclusion as ExclusionConfig, lineage::ContainerNames};

/// Globs on a container's names; every one given must match.
#[derive(Debug, Default)]
pub struct WorkloadMatch {
    container_name: Option<GlobMatcher>,
    image: Option<GlobMatcher>,
    namespace: Option<GlobMatcher>,
    pod_name: Option<GlobMatcher>,
}

impl WorkloadMatch {
    /// None when the exclusion names no workload.
    pub fn compile(e: &ExclusionConfig, field: &str) -> Result<Option<Self>, DetectError> {
        let container = e.container.as_ref();
        let orchestrator = e.orchestrator.as_ref();
        let m = Self {
            container_name: glob(
                container.and_then(|c| c.name.as_deref()),
                field,
                "container.name",
            )?,
            image: glob(
                container
                    .and_then(|c| c.image.as_ref())
                    .and_then(|i| i.name.as_deref()),
                field,
                "container.image.name",
            )?,
            namespace: glob(
                orchestrator.and_then(|o| o.namespace.as_deref()),
                field,
                "orchestrator.namespace",
            )?,
            pod_name: glob(
                orchestrator
                    .and_then(|o| o.resource.as_ref())
                    .and_then(|r| r.name.as_deref()),
                field,
                "orchestrator.resource.name",
            )?,
        };
        let any = m.container_name.is_some()
            || m.image.is_some()
            || m.namespace.is_some()
            || m.pod_name.is_some();
        Ok(any.then_some(m))
    }

    pub fn matches(&self, names: Option<&ContainerNames>) -> bool {
        let Some(names) = names else {
            return false;
        };
        let ok = |glob: &Option<GlobMatcher>, value: &Option<String>| match glob {
            None => true,
            Some(g) => value.as_deref().is_some_and(|v| g.is_match(v)),
        };
        ok(&self.container_name, &names.name)
            && ok(&self.image, &names.image)
            && ok(&self.namespace, &names.namespace)
            && ok(&self.pod_name, &names.pod_name)
    }
}

/// `*` crosses `/`: an image glob `registry.example/ops/*` is about every image below it.
fn glob(pattern: Option<&str>, field: &str, key: &str) -> Result<Option<GlobMatcher>, DetectError> {
    let Some(pattern) = pattern else {
        return Ok(None);
    };
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map(|g| Some(g.compile_matcher()))
        .map_err(|err| DetectError::invalid(&format!("{field}.{key}"), format!("bad glob: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ContainerMatch, ImageMatch, OrchestratorMatch, ResourceMatch};

    fn names(image: &str, namespace: Option<&str>, pod: Option<&str>) -> ContainerNames {
        ContainerNames {
            name: Some("app".into()),
            image: Some(image.into()),
            namespace: namespace.map(Into::into),
            pod_name: pod.map(Into::into),
        }
    }

    fn compile(e: ExclusionConfig) -> WorkloadMatch {
        WorkloadMatch::compile(&e, "rules.x.exclude[0]")
            .expect("compiles")
            .expect("names a workload")
    }

    #[test]
    fn image_glob_matches_the_whole_reference_and_crosses_slashes() {
        let m = compile(ExclusionConfig {
            container: Some(ContainerMatch {
                image: Some(ImageMatch {
                    name: Some("registry.example/ops/backup:*".into()),
                }),
                ..ContainerMatch::default()
            }),
            ..ExclusionConfig::default()
        });
        assert!(m.matches(Some(&names("registry.example/ops/backup:1.4", None, None))));
        assert!(!m.matches(Some(&names(
            "registry.example/ops/backup-x:1.4",
            None,
            None
        ))));
        assert!(!m.matches(Some(&names("registry.example/shop/checkout:2", None, None))));
        let below = compile(ExclusionConfig {
            container: Some(ContainerMatch {
                image: Some(ImageMatch {
                    name: Some("registry.example/ops/*".into()),
                }),
                ..ContainerMatch::default()
            }),
            ..ExclusionConfig::default()
        });
        assert!(below.matches(Some(&names(
            "registry.example/ops/team/tool@sha256:ab",
            None,
            None
        ))));
        // Names not known (yet): never excluded by them.
        assert!(!below.matches(None));
        assert!(!below.matches(Some(&ContainerNames::default())));
    }

    #[test]
    fn namespace_and_pod_must_both_match_when_both_are_given() {
        let m = compile(ExclusionConfig {
            orchestrator: Some(OrchestratorMatch {
                namespace: Some("kube-system".into()),
                resource: Some(ResourceMatch {
                    name: Some("backup-*".into()),
                }),
            }),
            ..ExclusionConfig::default()
        });
        let img = "registry.example/ops/backup:1.4";
        assert!(m.matches(Some(&names(img, Some("kube-system"), Some("backup-29011")))));
        assert!(!m.matches(Some(&names(img, Some("shop"), Some("backup-29011")))));
        assert!(!m.matches(Some(&names(img, Some("kube-system"), Some("checkout-1")))));
        assert!(
            !m.matches(Some(&names(img, None, None))),
            "a plain container"
        );
    }

    #[test]
    fn a_bad_glob_names_its_key_and_no_workload_is_none() {
        let err = WorkloadMatch::compile(
            &ExclusionConfig {
                orchestrator: Some(OrchestratorMatch {
                    namespace: Some("kube-[".into()),
                    ..OrchestratorMatch::default()
                }),
                ..ExclusionConfig::default()
            },
            "rules.x.exclude[2]",
        )
        .expect_err("bad glob")
        .to_string();
        assert!(
            err.contains("rules.x.exclude[2].orchestrator.namespace"),
            "{err}"
        );
        let none = WorkloadMatch::compile(
            &ExclusionConfig {
                container: Some(ContainerMatch::default()),
                ..ExclusionConfig::default()
            },
            "f",
        )
        .expect("compiles");
        assert!(none.is_none());
    }
}
