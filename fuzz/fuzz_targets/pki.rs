//! The certificate and issuer the revocation targets judge answers against.

use signet::verify::notation::fuzzing::Pair;

pub fn pair() -> Pair {
    if let Ok(dir) = std::env::var("SIGNET_FUZZ_PKI") {
        let dir = std::path::Path::new(&dir);
        let read = |name: &str| {
            std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        };
        return Pair::new(&read("leaf.der"), &read("ca.der"))
            .expect("SIGNET_FUZZ_PKI holds a certificate and its issuer");
    }
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = rcgen::CertificateParams::new(vec!["leaf".into()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    Pair::new(leaf.der(), ca.der()).expect("generated pair parses")
}
