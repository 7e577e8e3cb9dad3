//! PasswordHasher: argon2id PHC strings for the `user.password` column.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

use super::{StoreError, StoreResult};

/// Hashes passwords with argon2id and a random salt, and verifies them.
///
/// The cost parameters only affect new hashes: a stored PHC string carries its own
/// parameters, so raising the cost later does not lock out existing users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordHasher {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
}

impl Default for PasswordHasher {
    /// The argon2 crate's defaults (m = 19456 KiB, t = 2, p = 1), OWASP's recommendation.
    fn default() -> Self {
        PasswordHasher {
            m_cost_kib: Params::DEFAULT_M_COST,
            t_cost: Params::DEFAULT_T_COST,
            p_cost: Params::DEFAULT_P_COST,
        }
    }
}

impl PasswordHasher {
    /// A hasher with custom costs: memory in KiB, iterations, lanes. Tests use tiny costs
    /// to stay fast; the argon2 crate's limits are checked here, not at the first hash.
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> StoreResult<Self> {
        let hasher = PasswordHasher {
            m_cost_kib,
            t_cost,
            p_cost,
        };
        hasher.argon2()?;
        Ok(hasher)
    }

    fn argon2(&self) -> StoreResult<Argon2<'static>> {
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|e| StoreError::Password(format!("bad argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Hashes `password` with a fresh random salt into a PHC string (`$argon2id$v=19$...`).
    pub fn hash(&self, password: &str) -> StoreResult<String> {
        let hash = self
            .argon2()?
            .hash_password(password.as_bytes())
            .map_err(|e| StoreError::Password(e.to_string()))?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches the PHC string `phc`. A malformed or foreign hash (e.g.
    /// a seeds-era plaintext password) is simply a mismatch.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        // Verification takes the parameters from the PHC string, not from `self`.
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(64, 1, 1).expect("valid small parameters")
    }

    #[test]
    fn hash_then_verify() {
        let h = cheap();
        let phc = h.hash("s3cret ☃").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(phc.len() <= 255, "fits the password column");
        assert!(h.verify("s3cret ☃", &phc));
        assert!(!h.verify("s3cret", &phc));
        assert!(!h.verify("", &phc));
    }

    #[test]
    fn salts_differ() {
        let h = cheap();
        let a = h.hash("same").expect("hash");
        let b = h.hash("same").expect("hash");
        assert_ne!(a, b);
        assert!(h.verify("same", &a) && h.verify("same", &b));
    }

    #[test]
    fn verify_uses_the_hash_own_parameters() {
        let phc = cheap().hash("pw").expect("hash");
        let other = PasswordHasher::new(128, 2, 1).expect("valid");
        assert!(other.verify("pw", &phc));
    }

    #[test]
    fn default_parameters() {
        let h = PasswordHasher::default();
        assert_eq!((h.m_cost_kib, h.t_cost, h.p_cost), (19456, 2, 1));
        let phc = h.hash("pw").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify("pw", &phc));
    }

    #[test]
    fn malformed_hashes_do_not_verify() {
        let h = cheap();
        for bad in [
            "",
            "123456",
            "$argon2id$",
            "$argon2id$v=19$m=64,t=1,p=1$",
            "$$$$",
        ] {
            assert!(!h.verify("123456", bad), "{bad:?}");
        }
        let mut phc = h.hash("pw").expect("hash");
        let last = phc.pop();
        phc.push(if last == Some('A') { 'B' } else { 'A' });
        assert!(!h.verify("pw", &phc));
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert!(matches!(
            PasswordHasher::new(1, 1, 1),
            Err(StoreError::Password(_))
        ));
        assert!(PasswordHasher::new(64, 0, 1).is_err());
        assert!(PasswordHasher::new(64, 1, 0).is_err());
    }
}
