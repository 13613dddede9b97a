//! The ingress settings of a devbox's ports: who may reach each one
//! through the server's proxy, and the key its signed links are made with.

use async_trait::async_trait;
use devbox_model::DevboxId;

use crate::StoreError;

/// Who may reach a port through the ingress. A port without a record is
/// private.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortAccess {
    /// The owner's token, the web page's session, or a signed link.
    #[default]
    Private,
    /// Anyone.
    Public,
}

impl PortAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            PortAccess::Private => "private",
            PortAccess::Public => "public",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(PortAccess::Private),
            "public" => Some(PortAccess::Public),
            _ => None,
        }
    }
}

/// The settings of one port of one devbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRecord {
    pub devbox: DevboxId,
    pub port: u16,
    pub access: PortAccess,
    /// Signed links carry an HMAC over this key: replacing it revokes every
    /// link made before.
    pub link_key: String,
}

/// Ports' ingress settings.
#[async_trait]
pub trait PortStore: Send + Sync + std::fmt::Debug {
    /// The devbox's ports that have settings, by port number.
    async fn list_ports(&self, devbox: &DevboxId) -> Result<Vec<PortRecord>, StoreError>;

    /// One port's settings, if it has any.
    async fn get_port(
        &self,
        devbox: &DevboxId,
        port: u16,
    ) -> Result<Option<PortRecord>, StoreError>;

    /// Sets the port's access; a port without settings gets `new_key` as
    /// its link key. Fails with [`StoreError::NotFound`] when the devbox is
    /// gone.
    async fn set_port_access(
        &self,
        devbox: &DevboxId,
        port: u16,
        access: PortAccess,
        new_key: &str,
    ) -> Result<PortRecord, StoreError>;

    /// Replaces the port's link key (a port without settings becomes
    /// private with it). Fails with [`StoreError::NotFound`] when the devbox
    /// is gone.
    async fn set_link_key(
        &self,
        devbox: &DevboxId,
        port: u16,
        key: &str,
    ) -> Result<PortRecord, StoreError>;
}
