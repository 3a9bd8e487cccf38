//! The rules' identities, derived from the one registry in `rules/mod.rs`: [`RuleId`], its
//! [`RuleMeta`] (kept in the rule's own file through [`RuleUnit`]) and the [`super::Rules`]
//! fields that hold the compiled rules.

use super::{DetectError, RuleCommon};
use crate::{config::Config, detect::family::Families};

/// What a rule says about itself in alerts and metrics.
pub struct RuleMeta {
    /// `rule.id` in alerts and the `rule` label of metrics.
    pub id: &'static str,
    /// `rule.name`.
    pub name: &'static str,
    /// `rule.description`.
    pub description: &'static str,
    /// `event.category` of its alerts (file alerts say `file` whatever the rule).
    pub category: &'static [&'static str],
    /// `event.type` of its alerts (file alerts take the file event's).
    pub event_type: &'static [&'static str],
    /// It also alerts on processes with no server above them.
    pub server_optional: bool,
}

/// What the registry needs from a rule's file: who it is, how it is built from the whole
/// config (it picks its own section), and its shared settings for the gate.
pub trait RuleUnit: Sized {
    const META: RuleMeta;
    fn compile(config: &Config, families: &Families) -> Result<Self, DetectError>;
    fn common(&self) -> &RuleCommon;
}

/// Builds, from one list of `Variant => field: Type`, the [`RuleId`] enum (in list order, which
/// is the order of the per-rule totals), its metadata lookup, and the [`super::Rules`] struct
/// with one field per rule beside the shared `$extra` fields.
macro_rules! registry {
    (
        rules { $($variant:ident => $field:ident: $ty:ty,)* }
        shared { $($extra:ident: $extra_ty:ty,)* }
    ) => {
        /// The rules the engine knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RuleId {
            $($variant,)*
        }

        impl RuleId {
            pub const ALL: [RuleId; [$(RuleId::$variant),*].len()] = [$(RuleId::$variant),*];

            pub fn meta(self) -> &'static RuleMeta {
                match self {
                    $(RuleId::$variant => &<$ty as RuleUnit>::META,)*
                }
            }
        }

        pub struct Rules {
            $(pub $field: $ty,)*
            $($extra: $extra_ty,)*
        }

        impl Rules {
            fn compile_units(
                config: &Config,
                families: &Families,
                $($extra: $extra_ty,)*
            ) -> Result<Self, DetectError> {
                Ok(Self {
                    $($field: <$ty as RuleUnit>::compile(config, families)?,)*
                    $($extra,)*
                })
            }

            pub fn common(&self, rule: RuleId) -> &RuleCommon {
                match rule {
                    $(RuleId::$variant => self.$field.common(),)*
                }
            }
        }
    };
}
pub(super) use registry;

impl super::RuleId {
    /// Position in [`Self::ALL`], for per-rule counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// `rule.id` in alerts and the `rule` label of metrics.
    pub fn as_str(self) -> &'static str {
        self.meta().id
    }

    /// The file rules also alert on processes with no server above them.
    pub fn server_optional(self) -> bool {
        self.meta().server_optional
    }
}

#[cfg(test)]
mod tests {
    use super::super::RuleId;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, rule) in RuleId::ALL.iter().enumerate() {
            assert_eq!(rule.index(), i, "{rule:?}");
        }
    }
}
