//! Which component serves each (namespace, aggregate type).
//!
//! Components are found by digest, so deploying the same bytes twice (or to
//! several namespaces) compiles them once. Deploying a different component
//! for a type switches new commands to it; aggregates live under the old one
//! are passivated on their next command and re-activate under the new one.
//!
//! **Invariant:** the registry keeps a compiled component in memory only
//! while it is active somewhere; the digest index holds weak references. A
//! version that was replaced lives on only while instances or commands
//! still use it, then its compiled code is freed (activating it again
//! loads it from the compile cache). Otherwise every version a tenant ever
//! deployed stayed in memory: ~0.9 MB of machine code for a 250 KB
//! component, thousands of versions within a namespace's component quota.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};

use aether_core::namespace::{AggregateType, Namespace};

use super::component::{Digest, LoadedComponent};

#[derive(Default)]
pub(crate) struct Registry {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    by_digest: HashMap<Digest, Weak<LoadedComponent>>,
    active: HashMap<(Namespace, AggregateType), Arc<LoadedComponent>>,
}

impl Registry {
    pub(crate) fn compiled(&self, digest: &Digest) -> Option<Arc<LoadedComponent>> {
        self.read().by_digest.get(digest).and_then(Weak::upgrade)
    }

    pub(crate) fn activate(
        &self,
        namespace: Namespace,
        aggregate_type: AggregateType,
        component: Arc<LoadedComponent>,
    ) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner
            .by_digest
            .insert(component.digest().clone(), Arc::downgrade(&component));
        // The version it replaces is dropped here unless something else
        // still uses it; then its index entry goes too.
        inner.active.insert((namespace, aggregate_type), component);
        inner
            .by_digest
            .retain(|_, component| component.strong_count() > 0);
    }

    pub(crate) fn active(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
    ) -> Option<Arc<LoadedComponent>> {
        self.read()
            .active
            .get(&(namespace.clone(), aggregate_type.clone()))
            .cloned()
    }

    /// Every (namespace, aggregate type) with its active component's digest.
    pub(crate) fn list(&self) -> Vec<(Namespace, AggregateType, Digest)> {
        let mut list: Vec<_> = self
            .read()
            .active
            .iter()
            .map(|((ns, ty), c)| (ns.clone(), ty.clone(), c.digest().clone()))
            .collect();
        list.sort();
        list
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
}
