//! Golden vectors from the official SDKs (`shared/vectors/dingtalk.json`), byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dingtalk::crypto::{
    CallbackBody, CallbackCrypto, CallbackQuery, CryptoError, signature, verify_signature,
};
use dingtalk::robot::{robot_sign, robot_url};
use dingtalk::stream::{AckFrame, DownstreamFrame, FrameType, HandlerOutcome, build_ack};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors/dingtalk.json"
    );
    let text = std::fs::read_to_string(path).expect("vectors file");
    serde_json::from_str(&text).expect("vectors JSON")
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("missing {k}"))
}

#[test]
fn callback_encrypt_vectors_match_byte_for_byte() {
    let v = vectors();
    let cases = v["callback_crypto"]["encrypt"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let name = s(c, "name");
        let crypto =
            CallbackCrypto::new(s(c, "token"), s(c, "encoding_aes_key"), s(c, "owner_key"))
                .unwrap();
        assert_eq!(
            hex::encode(crypto.aes_key()),
            s(c, "aes_key_hex"),
            "{name} key"
        );
        assert_eq!(
            hex::encode(&crypto.aes_key()[..16]),
            s(c, "iv_hex"),
            "{name} iv"
        );
        let random: [u8; 16] = s(c, "random").as_bytes().try_into().unwrap();
        let plaintext = s(c, "plaintext");
        let padded = crypto.padded_plain(plaintext, &random);
        assert_eq!(
            hex::encode(&padded),
            s(c, "padded_plain_hex"),
            "{name} padded"
        );
        assert_eq!(
            hex::encode(&padded[16..20]),
            s(c, "msg_len_be_hex"),
            "{name} len"
        );
        let pad_len = c["pad_len"].as_u64().unwrap() as usize;
        assert_eq!(
            padded.len() - pad_len,
            c["unpadded_len"].as_u64().unwrap() as usize
        );
        let exp = &c["expected"];
        let reply = crypto.reply_with_random(plaintext, s(c, "timestamp"), s(c, "nonce"), &random);
        assert_eq!(reply.encrypt, s(exp, "encrypt"), "{name} encrypt");
        assert_eq!(
            reply.msg_signature,
            s(exp, "msg_signature"),
            "{name} signature"
        );
        assert_eq!(reply.time_stamp, s(exp, "timeStamp"));
        assert_eq!(reply.nonce, s(exp, "nonce"));
        // The reply serializes with the documented keys.
        let as_json = serde_json::to_value(&reply).unwrap();
        assert_eq!(&as_json, exp, "{name} reply JSON");
        // Decrypt the SDK's ciphertext back.
        assert_eq!(
            crypto.decrypt(s(exp, "encrypt")).unwrap(),
            plaintext,
            "{name} decrypt"
        );
        // And the full inbound path: verify + decrypt + parse.
        let q = CallbackQuery {
            msg_signature: Some(s(exp, "msg_signature").to_owned()),
            timestamp: Some(s(exp, "timeStamp").to_owned()),
            nonce: Some(s(exp, "nonce").to_owned()),
        };
        let body = CallbackBody {
            encrypt: s(exp, "encrypt").to_owned(),
        };
        if plaintext.starts_with('{') {
            let ev = crypto.open_event(&q, &body).unwrap();
            assert_eq!(ev.plaintext, plaintext);
        } else {
            assert_eq!(
                crypto
                    .open(
                        s(exp, "msg_signature"),
                        s(exp, "timeStamp"),
                        s(exp, "nonce"),
                        s(exp, "encrypt")
                    )
                    .unwrap(),
                "success"
            );
        }
    }
}

#[test]
fn utf8_length_is_bytes_and_chinese_round_trips() {
    let v = vectors();
    let c = &v["callback_crypto"]["encrypt"][1];
    let crypto =
        CallbackCrypto::new(s(c, "token"), s(c, "encoding_aes_key"), s(c, "owner_key")).unwrap();
    let ev = crypto
        .open_event(
            &serde_json::from_value::<CallbackQuery>(serde_json::json!({
                "signature": s(&c["expected"], "msg_signature"),
                "timeStamp": s(&c["expected"], "timeStamp"),
                "nonce": s(&c["expected"], "nonce"),
            }))
            .unwrap(),
            &CallbackBody {
                encrypt: s(&c["expected"], "encrypt").to_owned(),
            },
        )
        .unwrap();
    assert_eq!(ev.event_type, "user_add_org");
    assert_eq!(ev.payload["UserId"][0], "张三01");
    let msg = "{\"EventType\":\"bpms_instance_change\",\"title\":\"张三提交的费用报销\",\"result\":\"agree\"}";
    let enc = crypto.encrypt(msg);
    assert_eq!(crypto.decrypt(&enc).unwrap(), msg);
}

#[test]
fn check_url_vector_answers_success() {
    let v = vectors();
    let c = &v["callback_crypto"]["encrypt"][2];
    let crypto =
        CallbackCrypto::new(s(c, "token"), s(c, "encoding_aes_key"), s(c, "owner_key")).unwrap();
    let exp = &c["expected"];
    let q = CallbackQuery {
        msg_signature: Some(s(exp, "msg_signature").to_owned()),
        timestamp: Some(s(exp, "timeStamp").to_owned()),
        nonce: Some(s(exp, "nonce").to_owned()),
    };
    let body = CallbackBody {
        encrypt: s(exp, "encrypt").to_owned(),
    };
    let reply = crypto.check_url(&q, &body).unwrap();
    assert_eq!(
        crypto
            .open(
                &reply.msg_signature,
                &reply.time_stamp,
                &reply.nonce,
                &reply.encrypt
            )
            .unwrap(),
        "success"
    );
    assert_eq!(reply.nonce.len(), 16);
    // Tampered signature, wrong owner key.
    let bad = CallbackQuery {
        msg_signature: Some("0".repeat(40)),
        ..q.clone()
    };
    assert_eq!(
        crypto.check_url(&bad, &body).unwrap_err(),
        CryptoError::SignatureMismatch
    );
    let other = CallbackCrypto::new(s(c, "token"), s(c, "encoding_aes_key"), "dingother").unwrap();
    assert!(matches!(
        other.decrypt(s(exp, "encrypt")),
        Err(CryptoError::OwnerKeyMismatch { .. })
    ));
    assert!(CallbackCrypto::new("t", "short", "x").is_err());
}

#[test]
fn callback_signature_vectors() {
    let v = vectors();
    for c in v["callback_signature"].as_array().unwrap() {
        let sig = signature(
            s(c, "token"),
            s(c, "timestamp"),
            s(c, "nonce"),
            s(c, "encrypt"),
        );
        assert_eq!(sig, s(c, "expected_signature"));
        assert!(verify_signature(
            s(c, "token"),
            s(c, "timestamp"),
            s(c, "nonce"),
            s(c, "encrypt"),
            s(c, "expected_signature")
        ));
        assert!(verify_signature(
            s(c, "token"),
            s(c, "timestamp"),
            s(c, "nonce"),
            s(c, "encrypt"),
            &s(c, "expected_signature").to_uppercase()
        ));
        assert!(!verify_signature(
            s(c, "token"),
            s(c, "timestamp"),
            s(c, "nonce"),
            "x",
            s(c, "expected_signature")
        ));
    }
}

#[test]
fn robot_sign_vectors() {
    let v = vectors();
    let base = url::Url::parse("https://oapi.dingtalk.com").unwrap();
    for c in v["robot_sign"].as_array().unwrap() {
        let ts: i64 = s(c, "timestamp").parse().unwrap();
        assert_eq!(robot_sign(s(c, "secret"), ts), s(c, "sign_base64"));
        assert_eq!(
            urlencoding::encode(&robot_sign(s(c, "secret"), ts)),
            s(c, "sign_urlencoded")
        );
        let url = s(c, "url");
        let token = url
            .split("access_token=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        assert_eq!(robot_url(&base, token, Some(s(c, "secret")), ts), url);
    }
}

#[test]
fn stream_ack_vectors_parse_and_serialize() {
    let v = vectors();
    for c in v["stream_ack"].as_array().unwrap() {
        let name = s(c, "name");
        let frame: DownstreamFrame = serde_json::from_value(c["frame"].clone()).unwrap();
        assert_eq!(
            serde_json::to_value(&frame).unwrap(),
            c["frame"],
            "{name} frame round trip"
        );
        let ack: AckFrame = serde_json::from_value(c["ack_sent"].clone()).unwrap();
        assert_eq!(
            serde_json::to_value(&ack).unwrap(),
            c["ack_sent"],
            "{name} ack round trip"
        );
        assert_eq!(ack.headers.message_id, frame.headers.message_id);
        // Our ACKs: same code and messageId; `data` compared as JSON (whitespace differs).
        let outcome = match s(c, "handler") {
            "sdk_default" if frame.frame_type == FrameType::Event => HandlerOutcome::NotImplemented,
            "callback_ok" => HandlerOutcome::Callback(Value::String("OK".into())),
            _ => HandlerOutcome::Success,
        };
        let ours = build_ack(&frame, &outcome);
        assert_eq!(ours.code, ack.code, "{name} code");
        assert_eq!(ours.headers.message_id, ack.headers.message_id);
        assert_eq!(ours.headers.content_type, "application/json");
        let ours_data: Value = serde_json::from_str(&ours.data).unwrap();
        let theirs: Value = serde_json::from_str(&ack.data).unwrap();
        match frame.frame_type {
            // SYSTEM and CALLBACK: identical to the official SDK.
            FrameType::System | FrameType::Callback => {
                assert_eq!(ours_data, theirs, "{name} data");
                assert_eq!(ours.message, ack.message, "{name} message");
            }
            // EVENT: PY-STREAM echoes the data; we follow the protocol doc (DP) and send
            // {"status":"SUCCESS"|"LATER",...}.
            FrameType::Event => {
                if ack.code == 200 {
                    assert_eq!(ours_data["status"], "SUCCESS", "{name}");
                    assert_eq!(ours.message, "OK");
                }
            }
            FrameType::Other(_) => unreachable!(),
        }
    }
}

proptest::proptest! {
    #[test]
    fn crypto_round_trips(msg in "\\PC{0,300}", random in proptest::array::uniform16(0u8..), owner in "[a-zA-Z0-9]{1,40}") {
        let c = CallbackCrypto::new("tok", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", owner.clone()).unwrap();
        let enc = c.encrypt_with_random(&msg, &random);
        proptest::prop_assert_eq!(c.decrypt(&enc).unwrap(), msg.clone());
        let reply = c.reply(&msg, "1700000000", "nonce");
        proptest::prop_assert!(c.verify(&reply.msg_signature, "1700000000", "nonce", &reply.encrypt));
        proptest::prop_assert_eq!(c.padded_plain(&msg, &random).len() % 32, 0);
    }
}
