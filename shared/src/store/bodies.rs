//! Event bodies too big for a DynamoDB item, kept in S3 (issue 13, item 5).
//!
//! A DynamoDB item holds at most 400 KB ([DynamoDB quotas]); a hub event carries its
//! VCALENDAR (`ical`) and a mapping its merge base and a conflict's remote version (`base`,
//! `conflict_remote`). A text above [`INLINE_MAX`] bytes is written to the bodies bucket
//! first and the item carries `<attribute>_s3 = "<object key>"` instead, so a reference never
//! names an object that is not there yet; reads fetch it back before the item is decoded, and
//! check it against the SHA-256 its key ends with. The engine never sees the difference.
//!
//! Object keys are `<table>/<sha256(item id)>/<attribute>/<sha256(body)>`: immutable (a new
//! body is a new key), so a reader of an older item version still finds its body, and a
//! conditional write that loses its race overwrites nothing. Removing an item
//! ([`super::Store::delete_mapping`], [`super::Store::purge_event`]) deletes the objects it
//! referenced; bodies superseded by an edit stay until the item goes (an event over 100 KB
//! edited 100 times keeps about 10 MB) — cheaper than the read-modify-write that would let
//! each write delete its predecessor's body safely.
//!
//! [DynamoDB quotas]: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-items

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use super::{Item, Store, StoreError};

/// Bytes above which a body attribute goes to S3 (100 KiB: three of them and the rest of
/// an item stay well inside DynamoDB's 400 KB, and each inline write costs at most 100 WCU).
pub const INLINE_MAX: usize = 100 * 1024;

/// The item attributes that may hold an event body.
const BODY_ATTRS: [&str; 3] = ["ical", "base", "conflict_remote"];

/// The S3 bucket of the stack's large bodies (`CALSYNC_BODIES_BUCKET`, `BodiesBucket` in
/// `infra/template.yaml`).
#[derive(Clone)]
pub struct Bodies {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl Bodies {
    /// Bodies kept in `bucket` through `s3`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            s3,
            bucket: bucket.into(),
        }
    }

    fn err(&self, op: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Aws {
            op,
            table: format!("s3://{}", self.bucket),
            reason: e.to_string(),
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn ref_attr(attr: &str) -> String {
    format!("{attr}_s3")
}

/// The object keys an item refers to.
fn refs(item: &Item) -> Vec<String> {
    BODY_ATTRS
        .iter()
        .filter_map(|a| match item.get(&ref_attr(a)) {
            Some(AttributeValue::S(k)) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

impl Store {
    /// This store with large bodies kept in `bodies` (without it, an event whose item would
    /// pass [`INLINE_MAX`] is refused with [`StoreError::TooLarge`]).
    pub fn with_bodies(mut self, bodies: Bodies) -> Self {
        self.bodies = Some(bodies);
        self
    }

    /// Move each body attribute of `item` (identified by `id`, e.g. `<group>/<uid>`) above
    /// [`INLINE_MAX`] to S3, leaving its object key in `<attribute>_s3`.
    /// Errors: [`StoreError::TooLarge`] without a bucket; S3 failures as [`StoreError::Aws`].
    pub(super) async fn offload(
        &self,
        table: &str,
        id: &str,
        item: &mut Item,
    ) -> Result<(), StoreError> {
        for attr in BODY_ATTRS {
            let big = match item.get(attr) {
                Some(AttributeValue::S(v)) if v.len() > INLINE_MAX => v.len(),
                _ => continue,
            };
            let Some(bodies) = &self.bodies else {
                return Err(StoreError::TooLarge {
                    table: table.into(),
                    attribute: attr,
                    bytes: big,
                });
            };
            let Some(AttributeValue::S(body)) = item.remove(attr) else {
                continue;
            };
            let key = format!(
                "{table}/{}/{attr}/{}",
                sha256_hex(id.as_bytes()),
                sha256_hex(body.as_bytes())
            );
            bodies
                .s3
                .put_object()
                .bucket(&bodies.bucket)
                .key(&key)
                .content_type("text/calendar; charset=utf-8")
                .body(ByteStream::from(body.into_bytes()))
                .send()
                .await
                .map_err(|e| bodies.err("PutObject", aws_sdk_s3::error::DisplayErrorContext(e)))?;
            item.insert(ref_attr(attr), AttributeValue::S(key));
        }
        Ok(())
    }

    /// Put back each body `item` keeps in S3, checked against the SHA-256 its key ends
    /// with. Errors: [`StoreError::Malformed`] for a missing or altered body.
    pub(super) async fn hydrate(&self, table: &str, item: &mut Item) -> Result<(), StoreError> {
        for attr in BODY_ATTRS {
            let Some(AttributeValue::S(key)) = item.remove(&ref_attr(attr)) else {
                continue;
            };
            let malformed = |reason: String| StoreError::Malformed {
                table: table.into(),
                reason,
            };
            let Some(bodies) = &self.bodies else {
                return Err(malformed(format!(
                    "{attr} is kept in S3 ({key}) but no bodies bucket is configured"
                )));
            };
            let out = bodies
                .s3
                .get_object()
                .bucket(&bodies.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| bodies.err("GetObject", aws_sdk_s3::error::DisplayErrorContext(e)))?;
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| bodies.err("GetObject", e))?
                .into_bytes();
            if !key.ends_with(&sha256_hex(&bytes)) {
                return Err(malformed(format!(
                    "{attr} body {key} does not match its hash"
                )));
            }
            let body = String::from_utf8(bytes.to_vec())
                .map_err(|_| malformed(format!("{attr} body {key} is not UTF-8")))?;
            item.insert(attr.to_string(), AttributeValue::S(body));
        }
        Ok(())
    }

    /// One page's items of `table` as heads: each body attribute (inline or its S3
    /// reference) dropped, then deserialized. Nothing is read from S3.
    pub(super) fn decode_heads<T: serde::de::DeserializeOwned>(
        table: &str,
        items: Vec<Item>,
    ) -> Result<Vec<T>, StoreError> {
        items
            .into_iter()
            .map(|mut i| {
                for attr in BODY_ATTRS {
                    i.remove(attr);
                    i.remove(&ref_attr(attr));
                }
                Self::from_item(table, i)
            })
            .collect()
    }

    /// Delete the bodies a removed item referred to (best effort: an object left behind is
    /// only storage, never a wrong answer).
    pub(super) async fn forget_bodies(&self, old: Option<&Item>) {
        let (Some(bodies), Some(old)) = (&self.bodies, old) else {
            return;
        };
        for key in refs(old) {
            if let Err(e) = bodies
                .s3
                .delete_object()
                .bucket(&bodies.bucket)
                .key(&key)
                .send()
                .await
            {
                tracing::warn!(key, error = %aws_sdk_s3::error::DisplayErrorContext(e), "body left in S3");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_name_the_objects_an_item_points_to() {
        let item = Item::from([
            ("uid".into(), AttributeValue::S("u".into())),
            ("ical_s3".into(), AttributeValue::S("t/a/ical/b".into())),
            ("base".into(), AttributeValue::S("small".into())),
        ]);
        assert_eq!(refs(&item), vec!["t/a/ical/b".to_string()]);
        assert!(refs(&Item::new()).is_empty());
    }
}
