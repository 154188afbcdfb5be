//! Which channel each open attempt uses, looked up by the attempt's question slot.

use super::Owner;

/// Owner → channel slot. Question slots are dense and bounded (they index the slab of
/// questions in flight), so the table is a list per question slot, scanned over that
/// question's few attempts. A hash map did the same with kilobytes more code in the
/// router binary (hashing and rehashing of its own key type).
#[derive(Default)]
pub(super) struct OpenAttempts {
    by_question: Vec<Vec<(Owner, usize)>>,
}

impl OpenAttempts {
    /// Records that `owner` uses channel `slot` (replacing an earlier record).
    pub fn insert(&mut self, owner: Owner, slot: usize) {
        if self.by_question.len() <= owner.pending {
            self.by_question.resize_with(owner.pending + 1, Vec::new);
        }
        let Some(list) = self.by_question.get_mut(owner.pending) else {
            return;
        };
        match list.iter_mut().find(|e| e.0 == owner) {
            Some(e) => e.1 = slot,
            None => list.push((owner, slot)),
        }
    }

    /// Forgets `owner`; the channel slot it used, if it had one.
    pub fn remove(&mut self, owner: &Owner) -> Option<usize> {
        let list = self.by_question.get_mut(owner.pending)?;
        let i = list.iter().position(|e| e.0 == *owner)?;
        Some(list.swap_remove(i).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(pending: usize, gen: u32, attempt: usize) -> Owner {
        Owner {
            pending,
            gen,
            attempt,
        }
    }

    #[test]
    fn insert_replace_and_remove_by_full_owner() {
        let mut t = OpenAttempts::default();
        t.insert(owner(3, 1, 0), 10);
        t.insert(owner(3, 1, 1), 11);
        t.insert(owner(0, 2, 0), 12);
        // Same slot, other generation: a different owner.
        assert_eq!(t.remove(&owner(3, 2, 0)), None);
        t.insert(owner(3, 1, 0), 20);
        assert_eq!(t.remove(&owner(3, 1, 0)), Some(20));
        assert_eq!(t.remove(&owner(3, 1, 0)), None);
        assert_eq!(t.remove(&owner(3, 1, 1)), Some(11));
        assert_eq!(t.remove(&owner(0, 2, 0)), Some(12));
        assert_eq!(t.remove(&owner(99, 0, 0)), None);
    }
}
