//! What the engine remembers about each process in the lineage table: computed at exec (or
//! seeding) from the parent's, and inherited by forked children with the image.

use std::sync::Arc;

use super::family::FamilyId;
use crate::lineage::{Annotation, EntityId, Image};

#[derive(Debug, Clone, Default)]
pub struct Tag {
    /// This process's image is a server of this family.
    pub family: Option<FamilyId>,
    /// Skipped when walking up (jspawnhelper).
    pub transparent: bool,
    /// A shell (by the shell rule's definition) below a server.
    pub shell_below_server: bool,
    /// Some ancestor below the server is a shell that the server started.
    pub below_shell: bool,
    /// The nearest server strictly above; kept here so that a process whose ancestors were
    /// evicted still knows it.
    pub server: Option<Arc<ServerRef>>,
    /// Found to listen on a family's `listen_ports` (family, port); kept by forked children,
    /// dropped at exec since a new image listens on nothing yet.
    pub listening: Option<(FamilyId, u16)>,
    /// A shell by content: the executed file is a copy of this shell.
    pub copy_of: Option<Arc<str>>,
}

/// A server process, as remembered by its descendants.
#[derive(Debug)]
pub struct ServerRef {
    pub id: EntityId,
    pub family: FamilyId,
    pub image: Arc<Image>,
    /// The outermost server above (or this one): the root of the incident's tree.
    pub root: EntityId,
    /// Recognised by this listening port rather than by its executable.
    pub listen_port: Option<u16>,
}

impl Annotation for Tag {
    fn pinned(&self) -> bool {
        self.family.is_some() || self.listening.is_some()
    }
}
