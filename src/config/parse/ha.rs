//! The `[ha]` table: failover between two agents through an etcd lease.
//! Off unless present; every key is checked at file:line:col like the rest.

use super::set;
use super::walker::{Value, Walker};
use crate::config::HaConfig;
use std::time::Duration;
use toml::de::DeTable;

pub(super) const HA_KEYS: &[&str] = &["etcd", "ca_file", "cluster", "node", "lease"];

/// The shortest lease: etcd itself grants no less than about two seconds.
const MIN_LEASE: Duration = Duration::from_secs(2);

impl Walker<'_, '_> {
    pub(super) fn ha(&mut self, t: &DeTable<'_>, span: std::ops::Range<usize>) -> Option<HaConfig> {
        let mut ha = HaConfig::defaults();
        let mut has_etcd = false;
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let kp = format!("ha.{key}");
            match key {
                "etcd" => {
                    has_etcd = true;
                    if let Some(list) = self.etcd_endpoints(v, &kp) {
                        ha.etcd = list;
                    }
                }
                "ca_file" => ha.ca_file = self.path(v, &kp),
                "cluster" => set(&mut ha.cluster, self.name(v, &kp)),
                "node" => set(&mut ha.node, self.name(v, &kp)),
                "lease" => set(
                    &mut ha.lease,
                    self.duration_within(v, &kp, MIN_LEASE, Some(Duration::from_secs(300))),
                ),
                _ => self.unknown_key(k.span(), &kp, key, "[ha]", HA_KEYS),
            }
        }
        if !has_etcd {
            self.report(
                span,
                "ha.etcd",
                "[ha] needs etcd, the members' client URLs, e.g. etcd = [\"http://10.0.0.5:2379\", \
                 \"http://10.0.0.6:2379\", \"http://10.0.0.7:2379\"]",
            );
            return None;
        }
        Some(ha)
    }

    fn etcd_endpoints(&mut self, v: &Value<'_>, key: &str) -> Option<Vec<String>> {
        let items = self.array(v, key, "a list of URLs such as [\"http://10.0.0.5:2379\"]")?;
        if items.is_empty() {
            self.report(
                v.span(),
                key,
                "is empty; list every etcd member's client URL",
            );
            return None;
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let url = self.url(
                item,
                &format!("{key}[{i}]"),
                &["http", "https"],
                "http://10.0.0.5:2379",
            )?;
            out.push(url);
        }
        Some(out)
    }

    /// A cluster or node name: it becomes part of an etcd key.
    fn name(&mut self, v: &Value<'_>, key: &str) -> Option<String> {
        let s = self.nonempty_string(v, key)?;
        let ok = s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.report(
                v.span(),
                key,
                "use 1 to 63 letters, digits, '-', '_' or '.' (it is part of an etcd key)",
            );
            return None;
        }
        Some(s)
    }
}
