//! [`PortStore`] on SQLite.

use async_trait::async_trait;
use devbox_model::DevboxId;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Ctx as _, SqliteStore, corrupt, is_foreign_key_violation};
use crate::StoreError;
use crate::ports::{PortAccess, PortRecord, PortStore};

fn get(c: &Connection, devbox: &DevboxId, port: u16) -> Result<Option<PortRecord>, StoreError> {
    let row = c
        .query_row(
            "SELECT access, link_key FROM ports WHERE devbox_id = ?1 AND port = ?2",
            params![devbox.as_str(), port],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()
        .ctx("read a port's settings")?;
    row.map(|(access, link_key)| {
        Ok(PortRecord {
            devbox: devbox.clone(),
            port,
            access: PortAccess::parse(&access).ok_or_else(|| corrupt("access", &access))?,
            link_key,
        })
    })
    .transpose()
}

fn gone(devbox: &DevboxId) -> StoreError {
    StoreError::NotFound {
        what: format!("devbox {devbox}"),
    }
}

#[async_trait]
impl PortStore for SqliteStore {
    async fn list_ports(&self, devbox: &DevboxId) -> Result<Vec<PortRecord>, StoreError> {
        let devbox = devbox.clone();
        self.run(move |c| {
            let mut stmt = c
                .prepare("SELECT port FROM ports WHERE devbox_id = ?1 ORDER BY port")
                .ctx("list ports")?;
            let ports: Vec<u16> = stmt
                .query_map([devbox.as_str()], |r| r.get(0))
                .ctx("list ports")?
                .collect::<Result<_, _>>()
                .ctx("list ports")?;
            ports
                .into_iter()
                .filter_map(|p| get(c, &devbox, p).transpose())
                .collect()
        })
        .await
    }

    async fn get_port(
        &self,
        devbox: &DevboxId,
        port: u16,
    ) -> Result<Option<PortRecord>, StoreError> {
        let devbox = devbox.clone();
        self.run(move |c| get(c, &devbox, port)).await
    }

    async fn set_port_access(
        &self,
        devbox: &DevboxId,
        port: u16,
        access: PortAccess,
        new_key: &str,
    ) -> Result<PortRecord, StoreError> {
        let (devbox, new_key) = (devbox.clone(), new_key.to_owned());
        self.run(move |c| {
            match c.execute(
                "INSERT INTO ports (devbox_id, port, access, link_key) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (devbox_id, port) DO UPDATE SET access = excluded.access",
                params![devbox.as_str(), port, access.as_str(), new_key],
            ) {
                Ok(_) => {}
                Err(e) if is_foreign_key_violation(&e) => return Err(gone(&devbox)),
                Err(e) => return Err(e).ctx("set a port's access"),
            }
            get(c, &devbox, port)?.ok_or_else(|| gone(&devbox))
        })
        .await
    }

    async fn set_link_key(
        &self,
        devbox: &DevboxId,
        port: u16,
        key: &str,
    ) -> Result<PortRecord, StoreError> {
        let (devbox, key) = (devbox.clone(), key.to_owned());
        self.run(move |c| {
            match c.execute(
                "INSERT INTO ports (devbox_id, port, access, link_key) VALUES (?1, ?2, 'private', ?3)
                 ON CONFLICT (devbox_id, port) DO UPDATE SET link_key = excluded.link_key",
                params![devbox.as_str(), port, key],
            ) {
                Ok(_) => {}
                Err(e) if is_foreign_key_violation(&e) => return Err(gone(&devbox)),
                Err(e) => return Err(e).ctx("replace a port's link key"),
            }
            get(c, &devbox, port)?.ok_or_else(|| gone(&devbox))
        })
        .await
    }
}
