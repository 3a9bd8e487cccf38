//! What a rule is to the engine ([`RuleUnit`]), and the registry macro that derives, from the
//! one list in `rules/mod.rs`, the rules' identities ([`RuleId`], with each [`RuleMeta`] kept in
//! the rule's own file) and the routing of events to them.

use super::{ConnectContext, DetectError, ExecContext, FileContext, Finding, RuleCommon};
use crate::{
    config::Config,
    detect::family::Families,
    event::{Connect, File},
};

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

/// A rule's file implements this and nothing else is needed: who it is, how it is built from
/// the whole config (it picks its own section), its shared settings for the gate, and its
/// decisions over the events it looks at (the others keep the default: nothing).
pub trait RuleUnit: Sized {
    const META: RuleMeta;
    fn compile(config: &Config, families: &Families) -> Result<Self, DetectError>;
    fn common(&self) -> &RuleCommon;

    /// An exec (or a fork that linked an earlier exec late), after annotation.
    fn on_exec<'e>(&mut self, _cx: &ExecContext<'_>, _out: &mut Vec<Finding<'e>>) {}

    /// Whether a successful file event concerns this rule; `in_root`: its path is under a web
    /// root. Decided before the lineage is touched: the others are dropped there.
    fn wants_file(&self, _f: &File, _in_root: bool) -> bool {
        false
    }

    /// A file event this rule wanted, by a live process.
    fn on_file<'e>(&mut self, _cx: &FileContext<'_, 'e>, _out: &mut Vec<Finding<'e>>) {}

    /// Whether a connect concerns this rule, decided before the lineage is touched.
    fn wants_connect(&self, _c: &Connect) -> bool {
        false
    }

    /// A connect by a live process (whose server, if any, is known by now).
    fn on_connect<'e>(&mut self, _cx: &ConnectContext<'_, 'e>, _out: &mut Vec<Finding<'e>>) {}
}

/// Builds, from one list of `Variant = totals position => field: module::Type`, the rule
/// modules, the [`RuleId`] enum, its metadata lookup, and [`super::Units`] (one field per rule)
/// whose hooks run the rules in list order: the order of the alerts one event raises. The
/// explicit positions keep the order of the per-rule totals (`RuleId::ALL`) apart from it; they
/// are never renumbered.
macro_rules! registry {
    ($($variant:ident = $pos:literal => $field:ident: $module:ident::$ty:ident,)*) => {
        $(pub mod $module;)*

        /// The rules the engine knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RuleId {
            $($variant = $pos,)*
        }

        impl RuleId {
            /// In registry order.
            const LISTED: [RuleId; [$(RuleId::$variant),*].len()] = [$(RuleId::$variant),*];

            /// In totals order. A position out of range fails the build here; a repeated one,
            /// at the enum.
            pub const ALL: [RuleId; Self::LISTED.len()] = {
                let mut all = Self::LISTED;
                let mut i = 0;
                while i < all.len() {
                    all[Self::LISTED[i] as usize] = Self::LISTED[i];
                    i += 1;
                }
                all
            };

            pub fn meta(self) -> &'static RuleMeta {
                match self {
                    $(RuleId::$variant => &<$module::$ty as RuleUnit>::META,)*
                }
            }
        }

        /// Every rule, compiled.
        pub struct Units {
            $(pub $field: $module::$ty,)*
        }

        impl Units {
            fn compile(config: &Config, families: &Families) -> Result<Self, DetectError> {
                Ok(Self {
                    $($field: <$module::$ty as RuleUnit>::compile(config, families)?,)*
                })
            }

            pub fn common(&self, rule: RuleId) -> &RuleCommon {
                match rule {
                    $(RuleId::$variant => self.$field.common(),)*
                }
            }

            fn on_exec<'e>(&mut self, cx: &ExecContext<'_>, out: &mut Vec<Finding<'e>>) {
                $(self.$field.on_exec(cx, out);)*
            }

            /// The rules that want the file event, one bit per [`RuleId::index`].
            fn wanting_file(&self, f: &File, in_root: bool) -> u64 {
                let mut wanting = 0;
                $(if self.$field.wants_file(f, in_root) {
                    wanting |= 1 << RuleId::$variant.index();
                })*
                wanting
            }

            fn on_file<'e>(
                &mut self,
                cx: &FileContext<'_, 'e>,
                wanting: u64,
                out: &mut Vec<Finding<'e>>,
            ) {
                $(if wanting & (1 << RuleId::$variant.index()) != 0 {
                    self.$field.on_file(cx, out);
                })*
            }

            fn wants_connect(&self, c: &Connect) -> bool {
                false $(|| self.$field.wants_connect(c))*
            }

            fn on_connect<'e>(&mut self, cx: &ConnectContext<'_, 'e>, out: &mut Vec<Finding<'e>>) {
                $(self.$field.on_connect(cx, out);)*
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
