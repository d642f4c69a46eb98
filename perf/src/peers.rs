//! The peer libraries, each behind a cargo feature of its own.

/// ironcore-alloy 0.16 in standalone mode (AGPL-3.0-only: linked only into this unpublished
/// harness): encrypt and decrypt a one-field document.
#[cfg(feature = "alloy")]
pub mod alloy {
    use std::collections::HashMap;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use ironcore_alloy::standalone::config::{
        StandaloneConfiguration, StandaloneSecret, StandardSecrets,
    };
    use ironcore_alloy::standalone::standard::StandaloneStandardClient;
    use ironcore_alloy::standard::{PlaintextDocument, StandardDocumentOps};
    use ironcore_alloy::{AlloyMetadata, FieldId, Secret, Standalone, TenantId};

    /// Standalone operations never wait (the async functions wrap synchronous code), so one
    /// poll with a no-op waker completes them; a pending future (a later release that does
    /// wait) is driven to the end by a blocking executor instead of being dropped.
    fn drive<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => pollster::block_on(f),
        }
    }

    pub struct Alloy {
        client: Arc<StandaloneStandardClient>,
        metadata: Arc<AlloyMetadata>,
        field: FieldId,
    }

    impl Alloy {
        pub fn new() -> Self {
            let secret = Secret::new(vec![9u8; 32]).expect("a 32-byte secret");
            let standard = StandardSecrets::new(Some(1), vec![StandaloneSecret::new(1, secret)])
                .expect("one primary secret");
            let config = StandaloneConfiguration::new(standard, HashMap::new(), HashMap::new());
            Self {
                client: Standalone::new(&config).standard(),
                metadata: AlloyMetadata::new_simple(TenantId("tenant-1".to_owned())),
                field: FieldId("note".to_owned()),
            }
        }

        /// Encrypts a one-field document holding `value`, decrypts it, returns the field.
        pub fn round_trip(&self, value: &[u8]) -> Vec<u8> {
            let doc =
                PlaintextDocument(HashMap::from([(self.field.clone(), value.to_vec().into())]));
            let enc = drive(self.client.encrypt(doc, &self.metadata)).expect("encrypt");
            let mut dec = drive(self.client.decrypt(enc, &self.metadata)).expect("decrypt");
            dec.0.remove(&self.field).expect("the field comes back").0
        }
    }
}

/// tink-rust 0.3 (`tink-aead`), key template AES256_GCM: encrypt and decrypt with associated
/// data.
#[cfg(feature = "tink")]
pub mod tink {
    pub struct Tink {
        aead: Box<dyn tink_core::Aead>,
    }

    impl Tink {
        pub fn new() -> Self {
            tink_aead::init();
            let handle = tink_core::keyset::Handle::new(&tink_aead::aes256_gcm_key_template())
                .expect("a keyset from the AES256_GCM template");
            Self {
                aead: tink_aead::new(&handle).expect("an AEAD primitive"),
            }
        }

        pub fn round_trip(&self, value: &[u8], aad: &[u8]) -> Vec<u8> {
            let ct = self.aead.encrypt(value, aad).expect("encrypt");
            self.aead.decrypt(&ct, aad).expect("decrypt")
        }
    }
}
