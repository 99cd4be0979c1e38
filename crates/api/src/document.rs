//! The OpenAPI document's error responses, declared once for every
//! operation instead of by hand on each: every error is
//! `application/problem+json` with the [`Problem`](crate::error::Problem)
//! schema, and each operation lists the errors its extractors and the
//! token check can answer (400 for a bad parameter or malformed body, 401
//! without a valid token, 404 for an unknown id in the path, 408/413/415/422
//! for request bodies). A handler's own annotations add the rest (409, 502…).
//!
//! Path parameters are declared here too, as strings, unless the handler's
//! annotation declares them: utoipa infers them only from axum's own `Path`
//! extractor, and handlers use [`ApiPath`](crate::extract::ApiPath).

use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Required, Response};

const PROBLEM: &str = "application/problem+json";

/// Rewrite and complete the error responses of every operation.
pub(crate) fn declare_problems(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let has_path_params = path.contains('{');
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            declare_path_params(operation, path);
            complete(operation, has_path_params);
        }
    }
}

fn declare_path_params(operation: &mut Operation, path: &str) {
    let params = operation.parameters.get_or_insert_with(Vec::new);
    let names = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')));
    for name in names {
        let declared = params.iter().any(|p| match p {
            RefOr::T(p) => p.name == name && matches!(p.parameter_in, ParameterIn::Path),
            RefOr::Ref(_) => false,
        });
        if !declared {
            params.push(RefOr::T(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            ));
        }
    }
}

fn complete(operation: &mut Operation, has_path_params: bool) {
    let params = operation.parameters.as_deref().unwrap_or_default();
    let has_query = params.iter().any(|p| match p {
        RefOr::T(p) => matches!(p.parameter_in, ParameterIn::Query),
        RefOr::Ref(_) => true,
    });
    let body_types: Vec<String> = match &operation.request_body {
        Some(RefOr::T(body)) => body.content.keys().cloned().collect(),
        Some(RefOr::Ref(_)) => vec!["application/json".to_owned()],
        None => Vec::new(),
    };
    let json_body = body_types.iter().any(|t| t.ends_with("json"));
    // `security(())` on an operation (health) means no token is needed.
    let public = operation.security.as_ref().is_some_and(|s| {
        serde_json::to_value(s).is_ok_and(|v| {
            v.as_array().is_some_and(|a| {
                a.iter()
                    .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
            })
        })
    });
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    if has_query || has_path_params || json_body {
        wanted.push((
            "400",
            "A parameter or the body is malformed; `errors[].field` names it",
        ));
    }
    if !public {
        wanted.push(("401", "No valid token in `Authorization: Bearer <token>`"));
    }
    if has_path_params {
        wanted.push(("404", "Nothing has the id in the path"));
    }
    if !body_types.is_empty() {
        wanted.push(("408", "The body stopped arriving (`http.body_timeout_ms`)"));
        wanted.push(("413", "The body is larger than the daemon accepts"));
    }
    if json_body {
        wanted.push(("415", "The body is not `application/json`"));
        wanted.push(("422", "The body is JSON of the wrong shape or fails validation; `errors[].field` names the field"));
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in wanted {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(Response::new(description)));
    }
    for (status, response) in responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5') || status == "default";
        if let (true, RefOr::T(response)) = (is_error, response) {
            response.content.shift_remove("application/json");
            response.content.insert(
                PROBLEM.to_owned(),
                RefOr::T(Content::new(Some(Ref::from_schema_name("Problem")))),
            );
        }
    }
}
