//! The audit archive over HTTP: what a connection's connector kept as it
//! arrived (Twitch followers, subscriptions, raids, cheers), as JSON pages or
//! as a CSV export. `/connections/{id}/archive/{kind}` serves any
//! connection; `/twitch/{connection}/{kind}` is the same for a Twitch
//! connection named by id or label. Handlers are thin: the engine reads.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_runtime::ArchiveQuery;
use switchboard_store::ArchiveRecord;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery, bad_parameter, page_limit};
use crate::{ApiState, openapi_router};

/// The collections a Twitch connection archives.
pub const TWITCH_KINDS: [&str; 4] = ["followers", "subscriptions", "raids", "cheers"];

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    openapi_router()
        .routes(routes!(archive_counts))
        .routes(routes!(list_archive))
        .routes(routes!(list_twitch_archive))
}

/// One archived record.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArchiveRecordView {
    pub id: String,
    pub connection_id: String,
    pub kind: String,
    /// What identifies the record within its kind (the service's message id).
    pub key: String,
    /// When it happened, epoch milliseconds.
    pub occurred_at: i64,
    /// When it was archived, epoch milliseconds.
    pub recorded_at: i64,
    /// The record as the connector kept it (for Twitch, the EventSub event).
    #[schema(value_type = Object)]
    pub record: Value,
}

impl From<ArchiveRecord> for ArchiveRecordView {
    fn from(r: ArchiveRecord) -> Self {
        ArchiveRecordView {
            id: r.id,
            connection_id: r.connection_id,
            kind: r.kind,
            key: r.key,
            occurred_at: r.occurred_at,
            recorded_at: r.recorded_at,
            record: r.record,
        }
    }
}

/// How many records a connection's archive holds, by kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArchiveCount {
    pub kind: String,
    pub records: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ArchiveParams {
    /// Only records that occurred at or after this time (epoch ms).
    pub since: Option<i64>,
    /// Only records that occurred before this time (epoch ms).
    pub until: Option<i64>,
    /// Page backwards: only records older than this record id.
    pub before: Option<String>,
    /// At most this many (default 100, at most 10000).
    pub limit: Option<i64>,
    /// `json` (default) or `csv` (also chosen by `Accept: text/csv`).
    pub format: Option<String>,
}

/// The kinds of a connection's archive and their sizes.
#[utoipa::path(get, path = "/connections/{id}/archive", tag = "archive",
    responses((status = 200, body = Vec<ArchiveCount>), (status = 404, body = Problem)))]
async fn archive_counts(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<ArchiveCount>>, ApiError> {
    state.engine.get_connection(&id).await?;
    let counts = state.engine.archive_counts(&id).await?;
    Ok(Json(
        counts
            .into_iter()
            .map(|(kind, records)| ArchiveCount { kind, records })
            .collect(),
    ))
}

/// One kind of a connection's archive, newest first; `format=csv` exports it.
#[utoipa::path(get, path = "/connections/{id}/archive/{kind}", tag = "archive", params(ArchiveParams),
    responses((status = 200, body = Vec<ArchiveRecordView>), (status = 200, content_type = "text/csv", description = "the same records as CSV"),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_archive(
    State(state): State<ApiState>,
    ApiPath((id, kind)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<ArchiveParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let connection = state.engine.get_connection(&id).await?.connection;
    check_kind(&state, &connection.id, &connection.connector, &kind).await?;
    answer(
        &state,
        &connection.id,
        &connection.label,
        &kind,
        params,
        &headers,
    )
    .await
}

/// A Twitch connection's followers, subscriptions, raids or cheers (by id
/// or label), newest first; `format=csv` exports them.
#[utoipa::path(get, path = "/twitch/{connection}/{kind}", tag = "archive", params(ArchiveParams,
        ("connection" = String, Path, description = "The Twitch connection's id or label."),
        ("kind" = String, Path, description = "followers, subscriptions, raids or cheers.")),
    responses((status = 200, body = Vec<ArchiveRecordView>), (status = 200, content_type = "text/csv", description = "the same records as CSV"),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_twitch_archive(
    State(state): State<ApiState>,
    ApiPath((reference, kind)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<ArchiveParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !TWITCH_KINDS.contains(&kind.as_str()) {
        return Err(bad_parameter(
            "kind",
            format!(
                "a Twitch connection has no archive `{kind}`; use one of: {}",
                TWITCH_KINDS.join(", ")
            ),
        ));
    }
    let connection = state.engine.find_connection(&reference, "twitch").await?;
    answer(
        &state,
        &connection.id,
        &connection.label,
        &kind,
        params,
        &headers,
    )
    .await
}

/// The collections a connector archives. Connectors do not declare them in
/// their manifest (yet), so the API knows the built-in ones.
fn known_kinds(connector: &str) -> &'static [&'static str] {
    match connector {
        "twitch" => &TWITCH_KINDS,
        _ => &[],
    }
}

/// Refuse a kind the connection does not keep (a typo would otherwise
/// answer an empty list as if the archive were empty): 400 naming `kind`
/// with the valid ones, those the connector archives and any already held.
async fn check_kind(
    state: &ApiState,
    connection_id: &str,
    connector: &str,
    kind: &str,
) -> Result<(), ApiError> {
    let mut kinds: Vec<String> = known_kinds(connector)
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    if kinds.iter().any(|k| k == kind) {
        return Ok(());
    }
    for (held, _) in state.engine.archive_counts(connection_id).await? {
        if held == kind {
            return Ok(());
        }
        if !kinds.contains(&held) {
            kinds.push(held);
        }
    }
    let valid = if kinds.is_empty() {
        format!("this {connector} connection keeps no archive")
    } else {
        format!("use one of: {}", kinds.join(", "))
    };
    Err(bad_parameter(
        "kind",
        format!("`{kind}` is not an archive of this connection; {valid}"),
    ))
}

async fn answer(
    state: &ApiState,
    connection_id: &str,
    label: &str,
    kind: &str,
    params: ArchiveParams,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let csv = match params.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(bad_parameter(
                "format",
                format!("`{other}` is not a format; use json or csv"),
            ));
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/csv")),
    };
    let limit = page_limit(params.limit, if csv { 10_000 } else { 100 }, 10_000)?;
    let records = state
        .engine
        .list_archive(
            connection_id,
            kind,
            &ArchiveQuery {
                since: params.since,
                until: params.until,
                before_id: params.before,
                limit,
            },
        )
        .await?;
    if !csv {
        let views: Vec<ArchiveRecordView> = records.into_iter().map(Into::into).collect();
        return Ok(Json(views).into_response());
    }
    let body = to_csv(&records).map_err(|e| ApiError::internal(&e))?;
    let filename: String = format!("{label}-{kind}.csv")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The columns every CSV export starts with.
const FIXED_COLUMNS: [&str; 4] = ["id", "key", "occurred_at", "recorded_at"];

/// The records as CSV: `id, key, occurred_at, recorded_at` (RFC 3339, UTC)
/// and then one column per top-level field of the records, in the order
/// they first appear (each record's fields in name order). Nested values
/// are written as JSON. A record field named like a fixed column (Twitch
/// records carry their own `occurred_at`) is headed `record.<name>`, so
/// every column name is unique.
pub fn to_csv(records: &[ArchiveRecord]) -> Result<String, csv::Error> {
    let mut fields: Vec<String> = Vec::new();
    for record in records {
        if let Value::Object(map) = &record.record {
            for key in map.keys() {
                if !fields.contains(key) {
                    fields.push(key.clone());
                }
            }
        }
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = FIXED_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    header.extend(fields.iter().map(|f| {
        if FIXED_COLUMNS.contains(&f.as_str()) {
            format!("record.{f}")
        } else {
            f.clone()
        }
    }));
    writer.write_record(&header)?;
    for record in records {
        let mut row = vec![
            record.id.clone(),
            record.key.clone(),
            rfc3339(record.occurred_at),
            rfc3339(record.recorded_at),
        ];
        for field in &fields {
            row.push(match record.record.get(field) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => spreadsheet_safe(s),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(other) => other.to_string(),
            });
        }
        writer.write_record(&row)?;
    }
    let bytes = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 strings is UTF-8"))
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Text that a spreadsheet would run as a formula (a chat message or a
/// display name starting with `=`, `+`, `-` or `@`) gets a leading `'`,
/// OWASP's advice against CSV injection.
fn spreadsheet_safe(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(key: &str, occurred_at: i64, record: Value) -> ArchiveRecord {
        ArchiveRecord {
            id: format!("id-{key}"),
            connection_id: "c1".into(),
            kind: "followers".into(),
            key: key.into(),
            occurred_at,
            recorded_at: occurred_at + 1,
            record,
        }
    }

    #[test]
    fn csv_has_one_column_per_field_in_first_seen_order() {
        let csv = to_csv(&[
            record("m1", 1_700_000_000_000, json!({"user_login": "ann", "viewers": 12})),
            record(
                "m2",
                1_700_000_001_500,
                json!({"user_login": "bob, \"the\" builder", "message": {"text": "hi"}, "viewers": null}),
            ),
        ])
        .unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "id,key,occurred_at,recorded_at,user_login,viewers,message"
        );
        assert_eq!(
            lines[1],
            "id-m1,m1,2023-11-14T22:13:20.000Z,2023-11-14T22:13:20.001Z,ann,12,"
        );
        assert_eq!(
            lines[2],
            r#"id-m2,m2,2023-11-14T22:13:21.500Z,2023-11-14T22:13:21.501Z,"bob, ""the"" builder",,"{""text"":""hi""}""#
        );
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn formulas_are_defused_and_numbers_are_not() {
        let csv = to_csv(&[record(
            "m1",
            0,
            json!({"text": "=HYPERLINK(\"x\")", "n": -5}),
        )])
        .unwrap();
        let row = csv.lines().nth(1).unwrap();
        assert!(row.ends_with(r#",-5,"'=HYPERLINK(""x"")""#), "{row}");
    }

    #[test]
    fn record_fields_named_like_fixed_columns_get_their_own_column() {
        let csv = to_csv(&[record(
            "m1",
            1_700_000_000_000,
            json!({"occurred_at": "2023-11-14T22:13:20Z", "id": "42", "user_login": "ann"}),
        )])
        .unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let mut unique = header.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), header.len(), "columns repeat: {header:?}");
        assert_eq!(
            header,
            [
                "id",
                "key",
                "occurred_at",
                "recorded_at",
                "record.id",
                "record.occurred_at",
                "user_login"
            ]
        );
        assert_eq!(
            lines.next().unwrap(),
            "id-m1,m1,2023-11-14T22:13:20.000Z,2023-11-14T22:13:20.001Z,42,2023-11-14T22:13:20Z,ann"
        );
    }

    #[test]
    fn an_empty_archive_is_a_header() {
        assert_eq!(to_csv(&[]).unwrap(), "id,key,occurred_at,recorded_at\n");
    }
}
