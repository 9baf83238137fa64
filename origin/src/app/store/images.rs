//! Images and task attachments. An image is stored once under its content key, however many
//! tasks attach it.

use serde_json::json;
use sqlx::{Connection, Row};

use super::{append_event, task_exists, NewEvent, Store, StoreError};
use crate::app::model::{now_ms, rfc3339, Attachment};
use crate::core::dependencies::database::DbError;

/// A checked upload.
#[derive(Debug, Clone)]
pub struct NewImage {
    /// The content key (hash of the bytes, with the format's extension).
    pub key: String,
    /// The sniffed media type.
    pub content_type: &'static str,
    /// Pixels.
    pub width: i64,
    /// Pixels.
    pub height: i64,
    /// The file name the client gave, if any.
    pub filename: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// An image as served.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// Its media type.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Store {
    /// Stores `image` (once per key) and attaches it to task `task_id`, logging it.
    pub async fn attach_image(
        &self,
        task_id: i64,
        image: &NewImage,
        actor: &str,
    ) -> Result<Attachment, StoreError> {
        let db = self.database();
        let attached = db
            .observe("insert", "attachments", async {
                let mut connection = db.acquire().await?;
                let mut tx = connection.begin().await?;
                if !task_exists(&mut tx, task_id).await? {
                    return Ok(None);
                }
                let now = now_ms();
                sqlx::query(
                    "INSERT INTO images (key, content_type, width, height, bytes, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO NOTHING",
                )
                .bind(image.key.clone())
                .bind(image.content_type)
                .bind(image.width)
                .bind(image.height)
                .bind(image.bytes.clone())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO attachments (task_id, image_key, filename, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(task_id)
                .bind(image.key.clone())
                .bind(image.filename.clone())
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let event = NewEvent::about(actor, "create", "attachment", id).with_data(json!({
                    "task_id": task_id, "image": image.key, "bytes": image.bytes.len(),
                }));
                append_event(&mut tx, &event, now).await?;
                tx.commit().await?;
                Ok(Some(Attachment {
                    id,
                    task_id,
                    url: format!("/images/{}", image.key),
                    filename: image.filename.clone(),
                    content_type: image.content_type.to_owned(),
                    width: image.width,
                    height: image.height,
                    created_at: rfc3339(now),
                }))
            })
            .await?;
        attached.ok_or(StoreError::NotFound)
    }

    /// The image stored under `key`, if any.
    pub async fn image(&self, key: &str) -> Result<Option<StoredImage>, StoreError> {
        let db = self.database();
        let row = db
            .read("select", "images", move || async move {
                let mut connection = db.acquire().await?;
                sqlx::query("SELECT content_type, bytes FROM images WHERE key = $1")
                    .bind(key.to_owned())
                    .fetch_optional(&mut *connection)
                    .await
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let image = StoredImage {
            content_type: row.try_get(0).map_err(DbError::from)?,
            bytes: row.try_get(1).map_err(DbError::from)?,
        };
        Ok(Some(image))
    }
}

/// The key an image is stored under: the first 128 bits of its SHA-256, in hex, and `extension`.
pub fn content_key(bytes: &[u8], extension: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.{extension}")
}
