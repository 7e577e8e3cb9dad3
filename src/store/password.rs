//! PasswordHasher: argon2id PHC strings for the `user.password` column.

use std::cell::RefCell;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::{StoreError, StoreResult};

/// Bytes of random salt in a new hash (the PHC recommendation).
const SALT_BYTES: usize = 16;

/// Hashes passwords with argon2id and a random salt, and verifies them.
///
/// The cost parameters only affect new hashes: a stored PHC string carries its own
/// parameters, so raising the cost later does not lock out existing users.
///
/// Each thread that hashes keeps one argon2 working memory and reuses it: allocating
/// `m_cost` afresh per hash left glibc's heap holding hundreds of MiB after a burst of
/// logins (its mmap threshold rises after the first free of such a block), so RSS is now
/// bounded by threads × the largest `m_cost` met.
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

thread_local! {
    /// This thread's argon2 working memory, grown to the largest cost met so far.
    static WORK_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Stored hashes costlier than this are verified in memory of their own, freed after, so
/// one odd row cannot pin a huge block in every worker (1 GiB, in 1 KiB blocks).
const MAX_KEPT_BLOCKS: usize = 1 << 20;

/// Runs argon2 into `out`, in this thread's reused memory.
fn compute(
    argon2: &Argon2<'_>,
    params: &Params,
    pwd: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    let blocks = params.block_count();
    if blocks > MAX_KEPT_BLOCKS {
        return argon2.hash_password_into(pwd, salt, out);
    }
    WORK_MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2.hash_password_into_with_memory(pwd, salt, out, &mut memory[..blocks])
    })
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
        hasher.params()?;
        Ok(hasher)
    }

    fn params(&self) -> StoreResult<Params> {
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|e| StoreError::Password(format!("bad argon2 parameters: {e}")))
    }

    /// Hashes `password` with a fresh random salt into a PHC string (`$argon2id$v=19$...`).
    pub fn hash(&self, password: &str) -> StoreResult<String> {
        let failed = |e: &dyn std::fmt::Display| StoreError::Password(e.to_string());
        let params = self.params()?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt: [u8; SALT_BYTES] = rand::random();
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        compute(&argon2, &params, password.as_bytes(), &salt, &mut out).map_err(|e| failed(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
            salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
            hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` matches the PHC string `phc`. A malformed or foreign hash (e.g.
    /// a seeds-era plaintext password) is simply a mismatch.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        // Verification takes the algorithm and parameters from the PHC string, not `self`.
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from) {
            None => Version::default(),
            Some(Ok(version)) => version,
            Some(Err(_)) => return false,
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        if compute(
            &argon2,
            &params,
            password.as_bytes(),
            salt.as_ref(),
            &mut out,
        )
        .is_err()
        {
            return false;
        }
        // Output's equality is constant-time.
        Output::new(&out).is_ok_and(|computed| &computed == expected)
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
    fn agrees_with_the_argon2_crate_both_ways() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let stock = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).expect("valid"),
        );
        let theirs = stock.hash_password(b"pw").expect("hash").to_string();
        assert!(cheap().verify("pw", &theirs));
        assert!(!cheap().verify("pW", &theirs));
        let ours = cheap().hash("pw").expect("hash");
        assert!(stock.verify_password(b"pw", ours.as_str()).is_ok());
    }

    #[test]
    fn memory_is_reused_across_costs() {
        // Large then small then large again in one thread: the shared memory must not leak
        // state from one hash into the next.
        let big = PasswordHasher::new(256, 1, 1).expect("valid");
        let a = big.hash("one").expect("hash");
        let b = cheap().hash("two").expect("hash");
        assert!(big.verify("one", &a) && cheap().verify("two", &b));
        assert!(big.verify("one", &a));
        let lanes = PasswordHasher::new(128, 1, 2).expect("valid");
        let c = lanes.hash("three").expect("hash");
        assert!(lanes.verify("three", &c) && !lanes.verify("one", &c));
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
