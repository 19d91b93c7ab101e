//! The policy webhook's request body: `parse_review` on an AdmissionReview
//! POSTed by the API server, then the policy input made from it and the
//! answer for its uid.
//!
//! Invariants: nothing panics; an accepted review is an AdmissionReview v1
//! with a request object and a non-empty uid; the input document carries
//! the request under both `request` and `review`; the response answers the
//! same uid and is allowed exactly when the decision is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;
use wasmlayer_webhook::{input_document, input_sha256, parse_review, response, Decision};

fuzz_target!(|data: &[u8]| {
    let review = match parse_review(data) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.is_empty());
            return;
        }
    };
    assert_eq!(review["kind"], "AdmissionReview");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    let request = review["request"].as_object().expect("a request object");
    let uid = request["uid"].as_str().expect("a string uid");
    assert!(!uid.is_empty());

    let input = input_document(&review);
    assert_eq!(input["review"], review["request"]);
    assert_eq!(input["request"], review["request"]);
    let sha = input_sha256(&input);
    assert_eq!(sha.len(), 64);
    assert_eq!(sha, input_sha256(&input_document(&review)), "the digest is stable");

    // The request's own fields, as a policy reads them, drive a decision.
    let reasons: Vec<String> = match request.get("object") {
        Some(Json::Object(o)) => o.keys().cloned().collect(),
        Some(other) => vec![other.to_string()],
        None => Vec::new(),
    };
    let error = request.get("operation").and_then(Json::as_str).map(str::to_string);
    for decision in [
        Decision {
            allowed: reasons.is_empty(),
            reasons: reasons.clone(),
            error: None,
        },
        Decision::failed(error.unwrap_or_default()),
    ] {
        let r = response(uid, &decision);
        assert_eq!(r["kind"], "AdmissionReview");
        assert_eq!(r["response"]["uid"], uid);
        assert_eq!(r["response"]["allowed"], decision.allowed);
        if !decision.allowed {
            assert_eq!(r["response"]["status"]["code"], decision.code());
            let message = decision.message();
            assert!(!message.contains('\n') || decision.error.is_none(), "{message:?}");
        }
        // The answer is itself a body the webhook could be sent back.
        let text = serde_json::to_vec(&r).expect("serialise");
        let again: Json = serde_json::from_slice(&text).expect("parse");
        assert_eq!(again, r);
    }
});
