//! Links, checkpoints, identities, deliveries, audit, registry, migrations: every backend.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use store::*;
use store_testkit::test_stores;

const T0: Millis = 1_700_000_000_000;

#[tokio::test]
async fn migrations_are_current_after_migrate() {
    for ts in test_stores().await {
        let status = ts.store.migration_status().await.unwrap();
        assert!(status.is_current(), "{}: {status:?}", ts.name);
        assert!(!status.embedded.is_empty());
        ts.store.migrate().await.unwrap(); // idempotent
        ts.store.ping().await.unwrap();
    }
}

#[tokio::test]
async fn links_checkpoints_and_identities_round_trip() {
    for ts in test_stores().await {
        let s = &ts.store;
        let mut tx = s.begin().await.unwrap();
        let link = Link {
            flow: "approval_to_document".into(),
            source_key: "proc-inst-1".into(),
            target_key: Some("FYBX000123".into()),
            step: "saved".into(),
            payload_hash: Some("abc".into()),
            updated_at: T0,
        };
        tx.upsert_link(&link).await.unwrap();
        tx.upsert_link(&Link {
            step: "audited".into(),
            updated_at: T0 + 1,
            ..link.clone()
        })
        .await
        .unwrap();
        tx.put_checkpoint(&Checkpoint {
            flow: "org_sync".into(),
            name: "cursor".into(),
            value: "页码=3".into(),
            updated_at: T0,
        })
        .await
        .unwrap();
        let who = NewIdentity {
            dingtalk_userid: "manager4521".into(),
            unionid: Some("union-张伟".into()),
            kingdee_user: None,
            ehr_number: None,
            mobile: Some("13800138000".into()),
            job_number: Some("E0001".into()),
            email: None,
            matched_by: "job_number".into(),
            now: T0,
        };
        let id1 = tx.upsert_identity(&who).await.unwrap();
        // A later match fills the Kingdee side without erasing what was known.
        let id2 = tx
            .upsert_identity(&NewIdentity {
                kingdee_user: Some("张伟".into()),
                mobile: None,
                matched_by: "manual".into(),
                now: T0 + 1,
                ..who.clone()
            })
            .await
            .unwrap();
        assert_eq!(id1, id2, "{}", ts.name);
        tx.record_delivery(&NewDelivery {
            endpoint: "oa".into(),
            message_id: "msg_1".into(),
            attempt: 1,
            status_code: Some(503),
            response: Some("服务不可用".into()),
            outcome: "retry".into(),
            created_at: T0,
            duration_ms: 12,
        })
        .await
        .unwrap();
        tx.append_audit(&NewAudit {
            actor: "管理员".into(),
            action: "dlq.replay".into(),
            target: "job:7".into(),
            detail: json!({"原因": "映射已修正"}),
            at: T0,
        })
        .await
        .unwrap();
        tx.upsert_connection(&ConnectionRecord {
            name: "dingtalk".into(),
            kind: "dingtalk".into(),
            config_hash: "h1".into(),
            updated_at: T0,
        })
        .await
        .unwrap();
        tx.upsert_flow(&FlowRecord {
            name: "org_sync".into(),
            recipe: "org_sync".into(),
            enabled: true,
            config_hash: "h2".into(),
            updated_at: T0,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let got = s
            .get_link("approval_to_document", "proc-inst-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.step, "audited", "{}", ts.name);
        assert_eq!(got.target_key.as_deref(), Some("FYBX000123"));
        let cp = s
            .get_checkpoint("org_sync", "cursor")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cp.value, "页码=3");
        let ident = s
            .find_identity(&IdentityKey::Mobile("13800138000".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            ident.fields.kingdee_user.as_deref(),
            Some("张伟"),
            "{}",
            ts.name
        );
        assert_eq!(ident.fields.matched_by, "manual");
        assert!(
            s.find_identity(&IdentityKey::EhrNumber("none".into()))
                .await
                .unwrap()
                .is_none()
        );
        let by_union = s
            .find_identity(&IdentityKey::UnionId("union-张伟".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_union.id, id1);
        let d = s.list_deliveries("oa", 10).await.unwrap();
        assert_eq!(d[0].entry.status_code, Some(503));
        assert_eq!(d[0].entry.response.as_deref(), Some("服务不可用"));
        let a = s.list_audit(10).await.unwrap();
        assert_eq!(a[0].entry.detail["原因"], "映射已修正");
        assert!(s.list_flows().await.unwrap()[0].enabled);
        assert_eq!(s.list_connections().await.unwrap()[0].kind, "dingtalk");
    }
}
