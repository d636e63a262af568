//! What the local stack itself keeps across a restart when `scripts/dev`
//! gives it a state folder (the emulator keeps the rest): where each stream
//! consumer had read to, and which live-channel connections were open. Each
//! file is replaced whole (written beside, then renamed), so a hard kill
//! leaves the last whole version. Tests run without a state folder.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The value saved under `name`, or None when there is none or it
    /// cannot be read (then it is as if nothing had been saved).
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let bytes = std::fs::read(self.root.join(name)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::warn!(file = name, error = %err, "saved state unreadable, ignored");
                None
            }
        }
    }

    pub fn save<T: Serialize>(&self, name: &str, value: &T) {
        let path = self.root.join(name);
        let partial = self.root.join(format!("{name}.partial"));
        let written = serde_json::to_vec(value)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&partial, bytes))
            .and_then(|()| std::fs::rename(&partial, &path));
        if let Err(err) = written {
            tracing::warn!(file = name, error = %err, "saving state failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_replace_whole_values_and_bad_files_read_as_nothing() {
        let dir = std::env::temp_dir().join(format!("state-{}", uuid::Uuid::new_v4()));
        let state = StateDir::new(&dir).unwrap();
        assert_eq!(state.load::<Vec<u32>>("a.json"), None);
        state.save("a.json", &vec![1, 2]);
        state.save("a.json", &vec![3]);
        assert_eq!(state.load::<Vec<u32>>("a.json"), Some(vec![3]));
        std::fs::write(dir.join("b.json"), b"{not json").unwrap();
        assert_eq!(state.load::<Vec<u32>>("b.json"), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
