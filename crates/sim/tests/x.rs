//! The X simulator driven over HTTP, the way a real X client talks to X.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_sim::x::auth::OAuth1Signer;
use switchboard_sim::x::{
    Endpoint, Fault, MediaConfig, OAuth2Client, RateLimit, XSim, XSimConfig,
    check_request_against_spec,
};

const DEMO_ID: &str = "1000000000000000001";
const FRIEND_ID: &str = "1000000000000000002";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn config() -> XSimConfig {
    let mut oauth2_clients = XSimConfig::default().oauth2_clients;
    oauth2_clients.push(OAuth2Client {
        client_id: "public-client".into(),
        client_secret: None,
        redirect_uris: vec![REDIRECT.into()],
    });
    XSimConfig {
        media: MediaConfig {
            check_after_secs: 1,
            processing_time: Duration::from_millis(600),
            ..MediaConfig::default()
        },
        oauth2_clients,
        ..XSimConfig::default()
    }
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn demo_signer() -> OAuth1Signer {
    OAuth1Signer {
        consumer_key: "sim-consumer-key".into(),
        consumer_secret: "sim-consumer-secret".into(),
        token: Some("sim-demo-oauth1-token".into()),
        token_secret: "sim-demo-oauth1-secret".into(),
    }
}

fn pkce() -> (String, String) {
    let verifier = format!("verifier-{}", "x".repeat(50));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorize_url(sim: &XSim, client_id: &str, scope: &str, challenge: &str, auto: bool) -> String {
    let mut url = url::Url::parse(&format!("{}/i/oauth2/authorize", sim.base_url())).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st-123"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]);
    if auto {
        url.query_pairs_mut().append_pair("auto_approve", "1");
    }
    url.to_string()
}

/// Query pairs of the `Location` a 302 points at.
fn location_params(response: &reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap();
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {pairs:?}"))
}

async fn code_for(sim: &XSim, client_id: &str, scope: &str, challenge: &str) -> String {
    let response = http()
        .get(authorize_url(sim, client_id, scope, challenge, true))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    let params = location_params(&response);
    assert_eq!(param(&params, "state"), "st-123");
    param(&params, "code").to_owned()
}

async fn exchange(sim: &XSim, code: &str, verifier: &str) -> reqwest::Response {
    http()
        .post(format!("{}/2/oauth2/token", sim.base_url()))
        .header("authorization", basic("sim-client-id", "sim-client-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ]))
        .send()
        .await
        .unwrap()
}

async fn refresh(sim: &XSim, refresh_token: &str) -> reqwest::Response {
    http()
        .post(format!("{}/2/oauth2/token", sim.base_url()))
        .header("authorization", basic("sim-client-id", "sim-client-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]))
        .send()
        .await
        .unwrap()
}

async fn me(sim: &XSim, bearer: &str) -> reqwest::Response {
    http()
        .get(format!("{}/2/users/me", sim.base_url()))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
}

async fn post(sim: &XSim, bearer: &str, body: Value) -> reqwest::Response {
    http()
        .post(format!("{}/2/tweets", sim.base_url()))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

/// Every request the client sent conforms to the OpenAPI document, except
/// those the simulator refused with 400 (tests send some bad ones on purpose).
fn assert_spec_clean(sim: &XSim) {
    for req in sim.requests().iter().filter(|r| r.status != Some(400)) {
        if let Err(e) = check_request_against_spec(req) {
            panic!("request does not conform: {e}");
        }
    }
}

#[tokio::test]
async fn oauth2_pkce_flow_with_rotating_refresh_tokens() {
    let sim = XSim::start(config()).await.unwrap();
    let (verifier, challenge) = pkce();
    let scope = "tweet.read tweet.write users.read offline.access";
    let code = code_for(&sim, "sim-client-id", scope, &challenge).await;

    let tokens = exchange(&sim, &code, &verifier).await;
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens = json_of(tokens).await;
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 7200);
    assert_eq!(tokens["scope"], scope);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_1 = tokens["refresh_token"].as_str().unwrap().to_owned();

    let who = me(&sim, &access).await;
    assert_eq!(who.status(), StatusCode::OK);
    assert_eq!(json_of(who).await["data"]["username"], "switchboard_demo");

    // A code is single use.
    let reused = exchange(&sim, &code, &verifier).await;
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(reused).await,
        json!({"error": "invalid_request", "error_description": "Value passed for the authorization code was invalid."})
    );
    // A wrong verifier is refused.
    let code_2 = code_for(&sim, "sim-client-id", scope, &challenge).await;
    let wrong = exchange(&sim, &code_2, &format!("other-{}", "y".repeat(50))).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);

    // Refresh rotates.
    let rotated = refresh(&sim, &refresh_1).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated = json_of(rotated).await;
    let refresh_2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    let access_2 = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh_2, refresh_1);
    assert_eq!(me(&sim, &access_2).await.status(), StatusCode::OK);

    // Spending the old one again is refused the way X refuses it, and it
    // revokes the grant: the rotated tokens die with it.
    let spent = refresh(&sim, &refresh_1).await;
    assert_eq!(spent.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(spent).await,
        json!({"error": "invalid_request", "error_description": "Value passed for the token was invalid."})
    );
    assert_eq!(
        refresh(&sim, &refresh_2).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(me(&sim, &access_2).await.status(), StatusCode::UNAUTHORIZED);

    // Confidential clients must use HTTP Basic.
    let no_basic = http()
        .post(format!("{}/2/oauth2/token", sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", "sim-client-id"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(no_basic.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(no_basic).await["error"], "unauthorized_client");

    assert_eq!(sim.token_calls(), 7);
    assert_spec_clean(&sim);
    sim.stop().await;
}

#[tokio::test]
async fn oauth2_consent_page_public_client_and_scopes() {
    let sim = XSim::start(config()).await.unwrap();
    let (verifier, challenge) = pkce();

    // A person sees a page with an "Authorize app" button that posts back.
    let page = http()
        .get(authorize_url(
            &sim,
            "public-client",
            "tweet.read users.read",
            &challenge,
            false,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Authorize app"));
    let request_id = html
        .split("name=\"request_id\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let approved = http()
        .post(format!("{}/i/oauth2/authorize", sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("request_id", &request_id),
            ("user", "sim_friend"),
            ("decision", "approve"),
        ]))
        .send()
        .await
        .unwrap();
    let params = location_params(&approved);
    let code = param(&params, "code").to_owned();

    // A public client sends client_id in the body; no offline.access, no refresh token.
    let tokens = http()
        .post(format!("{}/2/oauth2/token", sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", "public-client"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens = json_of(tokens).await;
    assert!(tokens.get("refresh_token").is_none());
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        json_of(me(&sim, access).await).await["data"]["id"],
        FRIEND_ID
    );

    // Without tweet.write the token cannot post.
    let refused = post(&sim, access, json!({"text": "hello"})).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Denying sends the user back with access_denied.
    let page = http()
        .get(authorize_url(
            &sim,
            "public-client",
            "tweet.read",
            &challenge,
            false,
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let request_id = page
        .split("name=\"request_id\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let denied = http()
        .post(format!("{}/i/oauth2/authorize", sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("request_id", &request_id), ("decision", "deny")]))
        .send()
        .await
        .unwrap();
    assert_eq!(param(&location_params(&denied), "error"), "access_denied");

    // An unregistered redirect URI never gets a redirect.
    let bad = authorize_url(&sim, "public-client", "tweet.read", &challenge, true)
        .replace("callback", "elsewhere");
    assert_eq!(
        http().get(bad).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    sim.stop().await;
}

#[tokio::test]
async fn expired_access_and_revoked_refresh_tokens() {
    let sim = XSim::start(config()).await.unwrap();
    let (verifier, challenge) = pkce();
    let code = code_for(
        &sim,
        "sim-client-id",
        "tweet.read users.read offline.access",
        &challenge,
    )
    .await;
    let tokens = json_of(exchange(&sim, &code, &verifier).await).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(me(&sim, access).await.status(), StatusCode::OK);

    sim.expire_access_tokens();
    let expired = me(&sim, access).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        json_of(expired).await,
        json!({"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"})
    );
    assert_eq!(
        me(&sim, "sim-demo-bearer").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me(&sim, "not-a-token").await.status(),
        StatusCode::UNAUTHORIZED
    );

    sim.revoke_refresh_tokens("switchboard_demo");
    let refused = refresh(&sim, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(refused).await["error"], "invalid_request");
    sim.stop().await;
}

#[tokio::test]
async fn oauth1_signed_calls_are_verified() {
    let sim = XSim::start(config()).await.unwrap();
    let signer = demo_signer();
    let url = format!("{}/2/tweets", sim.base_url());

    let signed = http()
        .post(&url)
        .header("authorization", signer.header("POST", &url, &[], &[]))
        .json(&json!({"text": "signed with OAuth 1.0a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::CREATED);
    assert_eq!(sim.posts()[0].author_id, DEMO_ID);

    // The query is signed: changing it after signing breaks the signature.
    let search = format!("{}/2/tweets/search/recent?query=signed", sim.base_url());
    let header = signer.header("GET", &search, &[], &[]);
    let tampered = http()
        .get(format!("{search}&max_results=20"))
        .header("authorization", &header)
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), StatusCode::UNAUTHORIZED);
    let honest = http()
        .get(&search)
        .header("authorization", &header)
        .send()
        .await
        .unwrap();
    assert_eq!(honest.status(), StatusCode::OK);
    assert_eq!(json_of(honest).await["meta"]["result_count"], 1);
    // A nonce is good once.
    let replay = http()
        .get(&search)
        .header("authorization", &header)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    // A wrong token secret, or an old timestamp, fails too.
    let wrong_secret = OAuth1Signer {
        token_secret: "nope".into(),
        ..signer.clone()
    };
    let refused = http()
        .get(&search)
        .header(
            "authorization",
            wrong_secret.header("GET", &search, &[], &[]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let stale = signer.header_with("GET", &search, &[], &[], "fresh-nonce", 1_318_622_958);
    let refused = http()
        .get(&search)
        .header("authorization", stale)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_spec_clean(&sim);
    sim.stop().await;
}

#[tokio::test]
async fn oauth1_three_legged_flow() {
    let sim = XSim::start(config()).await.unwrap();
    let app = OAuth1Signer {
        consumer_key: "sim-consumer-key".into(),
        consumer_secret: "sim-consumer-secret".into(),
        token: None,
        token_secret: String::new(),
    };
    let request_url = format!("{}/oauth/request_token", sim.base_url());
    let answer = http()
        .post(&request_url)
        .header(
            "authorization",
            app.header("POST", &request_url, &[], &[("oauth_callback", REDIRECT)]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(answer.text().await.unwrap().as_bytes())
            .into_owned()
            .collect();
    assert_eq!(param(&pairs, "oauth_callback_confirmed"), "true");
    let request_token = param(&pairs, "oauth_token").to_owned();
    let request_secret = param(&pairs, "oauth_token_secret").to_owned();

    let page = http()
        .get(format!(
            "{}/oauth/authorize?oauth_token={request_token}",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("Authorize app"));
    let approved = http()
        .get(format!(
            "{}/oauth/authorize?oauth_token={request_token}&auto_approve=1&as_user=sim_friend",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap();
    let params = location_params(&approved);
    assert_eq!(param(&params, "oauth_token"), request_token);
    let verifier = param(&params, "oauth_verifier").to_owned();

    let access_url = format!("{}/oauth/access_token", sim.base_url());
    let leg3 = OAuth1Signer {
        token: Some(request_token.clone()),
        token_secret: request_secret,
        ..app.clone()
    };
    let answer = http()
        .post(&access_url)
        .header(
            "authorization",
            leg3.header("POST", &access_url, &[], &[("oauth_verifier", &verifier)]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(answer.text().await.unwrap().as_bytes())
            .into_owned()
            .collect();
    assert_eq!(param(&pairs, "user_id"), FRIEND_ID);
    assert_eq!(param(&pairs, "screen_name"), "sim_friend");

    let user = OAuth1Signer {
        token: Some(param(&pairs, "oauth_token").to_owned()),
        token_secret: param(&pairs, "oauth_token_secret").to_owned(),
        ..app
    };
    let me_url = format!("{}/2/users/me", sim.base_url());
    let who = http()
        .get(&me_url)
        .header("authorization", user.header("GET", &me_url, &[], &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(who).await["data"]["username"], "sim_friend");

    // The request token was spent by the exchange.
    let again = http()
        .post(&access_url)
        .header(
            "authorization",
            leg3.header("POST", &access_url, &[], &[("oauth_verifier", &verifier)]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_spec_clean(&sim);
    sim.stop().await;
}

#[tokio::test]
async fn post_reply_quote_search_mentions_and_delete() {
    let sim = XSim::start(config()).await.unwrap();
    let created = post(
        &sim,
        "sim-demo-bearer",
        json!({"text": "hello from the demo"}),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(created.headers().contains_key("x-rate-limit-remaining"));
    let root = json_of(created).await;
    let root_id = root["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(root["data"]["text"], "hello from the demo");

    let reply = post(
        &sim,
        "sim-friend-bearer",
        json!({"text": "nice one @switchboard_demo", "reply": {"in_reply_to_tweet_id": root_id}}),
    )
    .await;
    assert_eq!(reply.status(), StatusCode::CREATED);
    let reply_id = json_of(reply).await["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let quote = post(
        &sim,
        "sim-friend-bearer",
        json!({"text": "look at this", "quote_tweet_id": root_id}),
    )
    .await;
    assert_eq!(quote.status(), StatusCode::CREATED);

    let posts = sim.posts();
    assert_eq!(posts.len(), 3);
    assert_eq!(posts[1].reply_to.as_deref(), Some(root_id.as_str()));
    assert_eq!(posts[2].quote_of.as_deref(), Some(root_id.as_str()));

    // Quote and poll together are not allowed.
    let both = post(
        &sim,
        "sim-demo-bearer",
        json!({"text": "x", "quote_tweet_id": root_id, "poll": {"options": ["a", "b"], "duration_minutes": 60}}),
    )
    .await;
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    // An unknown field is refused, as the OpenAPI document says.
    let unknown = post(
        &sim,
        "sim-demo-bearer",
        json!({"text": "x", "colour": "red"}),
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(unknown).await["title"], "Invalid Request");
    let recorded = sim.requests().pop().unwrap();
    assert!(
        check_request_against_spec(&recorded)
            .unwrap_err()
            .contains("colour")
    );

    let search = http()
        .get(format!("{}/2/tweets/search/recent", sim.base_url()))
        .query(&[
            ("query", "from:sim_friend"),
            ("tweet.fields", "author_id,created_at"),
        ])
        .bearer_auth("sim-demo-bearer")
        .send()
        .await
        .unwrap();
    let search = json_of(search).await;
    assert_eq!(search["meta"]["result_count"], 2);
    assert_eq!(search["data"][0]["author_id"], FRIEND_ID);

    let mentions = http()
        .get(format!("{}/2/users/{DEMO_ID}/mentions", sim.base_url()))
        .query(&[("since_id", root_id.as_str())])
        .bearer_auth("sim-demo-bearer")
        .send()
        .await
        .unwrap();
    let mentions = json_of(mentions).await;
    assert_eq!(mentions["meta"]["result_count"], 1);
    assert_eq!(mentions["data"][0]["id"], reply_id);

    let own = http()
        .get(format!("{}/2/users/{DEMO_ID}/tweets", sim.base_url()))
        .bearer_auth("sim-demo-bearer")
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(own).await["data"][0]["id"], root_id);

    // Only the author may delete.
    let url = format!("{}/2/tweets/{root_id}", sim.base_url());
    let not_yours = http()
        .delete(&url)
        .bearer_auth("sim-friend-bearer")
        .send()
        .await
        .unwrap();
    assert_eq!(not_yours.status(), StatusCode::FORBIDDEN);
    let deleted = http()
        .delete(&url)
        .bearer_auth("sim-demo-bearer")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(json_of(deleted).await, json!({"data": {"deleted": true}}));
    assert_eq!(sim.posts().len(), 2);
    assert_eq!(sim.deleted_post_ids(), vec![root_id.clone()]);
    let orphan = post(
        &sim,
        "sim-demo-bearer",
        json!({"text": "late", "reply": {"in_reply_to_tweet_id": root_id}}),
    )
    .await;
    assert_eq!(orphan.status(), StatusCode::FORBIDDEN);

    // Mentions can also be injected directly.
    sim.create_post_as("sim_friend", "ping @switchboard_demo", None);
    assert_eq!(sim.posts().len(), 3);
    assert_spec_clean(&sim);
    sim.stop().await;
}

#[tokio::test]
async fn duplicate_content_is_refused() {
    let sim = XSim::start(config()).await.unwrap();
    let first = post(&sim, "sim-demo-bearer", json!({"text": "same words"})).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = post(&sim, "sim-demo-bearer", json!({"text": "same words"})).await;
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        json_of(again).await,
        json!({"title": "Forbidden", "detail": "You are not allowed to create a Tweet with duplicate content.", "type": "about:blank", "status": 403})
    );
    // Another author may say the same thing.
    let other = post(&sim, "sim-friend-bearer", json!({"text": "same words"})).await;
    assert_eq!(other.status(), StatusCode::CREATED);
    sim.stop().await;
}

#[tokio::test]
async fn text_length_is_weighted() {
    let sim = XSim::start(config()).await.unwrap();
    let ascii = post(&sim, "sim-demo-bearer", json!({"text": "a".repeat(280)})).await;
    assert_eq!(ascii.status(), StatusCode::CREATED);
    let over = post(&sim, "sim-demo-bearer", json!({"text": "b".repeat(281)})).await;
    assert_eq!(over.status(), StatusCode::BAD_REQUEST);
    // 256 + 1 + a URL counting 23 = 280.
    let url_text = format!(
        "{} https://example.com/{}",
        "c".repeat(256),
        "long-path/".repeat(20)
    );
    let with_url = post(&sim, "sim-demo-bearer", json!({"text": url_text})).await;
    assert_eq!(with_url.status(), StatusCode::CREATED);
    let cjk_ok = post(&sim, "sim-demo-bearer", json!({"text": "字".repeat(140)})).await;
    assert_eq!(cjk_ok.status(), StatusCode::CREATED);
    let cjk_over = post(&sim, "sim-demo-bearer", json!({"text": "語".repeat(141)})).await;
    assert_eq!(cjk_over.status(), StatusCode::BAD_REQUEST);
    let body = json_of(cjk_over).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Your Tweet text is too long.")
    );
    sim.stop().await;
}

fn multipart(segment_index: usize, chunk: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----switchboard-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"segment_index\"\r\n\r\n{segment_index}\r\n").as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(chunk);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn append(sim: &XSim, id: &str, index: usize, chunk: &[u8]) -> reqwest::Response {
    let (content_type, body) = multipart(index, chunk);
    http()
        .post(format!("{}/2/media/upload/{id}/append", sim.base_url()))
        .bearer_auth("sim-demo-bearer")
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn initialize(
    sim: &XSim,
    media_type: &str,
    category: &str,
    total: usize,
) -> reqwest::Response {
    http()
        .post(format!("{}/2/media/upload/initialize", sim.base_url()))
        .bearer_auth("sim-demo-bearer")
        .json(&json!({"media_type": media_type, "total_bytes": total, "media_category": category}))
        .send()
        .await
        .unwrap()
}

async fn finalize(sim: &XSim, id: &str) -> reqwest::Response {
    http()
        .post(format!("{}/2/media/upload/{id}/finalize", sim.base_url()))
        .bearer_auth("sim-demo-bearer")
        .send()
        .await
        .unwrap()
}

async fn status(sim: &XSim, id: &str) -> Value {
    let response = http()
        .get(format!("{}/2/media/upload", sim.base_url()))
        .query(&[("command", "STATUS"), ("media_id", id)])
        .bearer_auth("sim-demo-bearer")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    json_of(response).await
}

fn fake_mp4(len: usize) -> Vec<u8> {
    let mut bytes = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    bytes.resize(len, 0x42);
    bytes
}

#[tokio::test]
async fn chunked_video_upload_polls_to_succeeded() {
    let sim = XSim::start(config()).await.unwrap();
    let video = fake_mp4(300_000);
    let init = initialize(&sim, "video/mp4", "tweet_video", video.len()).await;
    assert_eq!(init.status(), StatusCode::OK);
    let init = json_of(init).await;
    let id = init["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(init["data"]["media_key"], format!("7_{id}"));
    assert!(init["data"]["expires_after_secs"].as_u64().unwrap() > 0);

    let chunks: Vec<&[u8]> = video.chunks(128 * 1024).collect();
    assert_eq!(chunks.len(), 3);
    assert_eq!(
        append(&sim, &id, 0, chunks[0]).await.status(),
        StatusCode::OK
    );
    // Out of order.
    assert_eq!(
        append(&sim, &id, 2, chunks[2]).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        append(&sim, &id, 1, chunks[1]).await.status(),
        StatusCode::OK
    );
    // Missing bytes.
    assert_eq!(finalize(&sim, &id).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        append(&sim, &id, 2, chunks[2]).await.status(),
        StatusCode::OK
    );

    let finalized = json_of(finalize(&sim, &id).await).await;
    assert_eq!(finalized["data"]["processing_info"]["state"], "pending");
    assert_eq!(finalized["data"]["processing_info"]["check_after_secs"], 1);

    // Not ready yet: a post may not use it.
    let early = post(
        &sim,
        "sim-demo-bearer",
        json!({"text": "clip", "media": {"media_ids": [id]}}),
    )
    .await;
    assert_eq!(early.status(), StatusCode::BAD_REQUEST);

    let started = Instant::now();
    let mut states = Vec::new();
    loop {
        let info = status(&sim, &id).await["data"]["processing_info"].clone();
        let state = info["state"].as_str().unwrap().to_owned();
        if state == "in_progress" {
            assert!(info["progress_percent"].as_u64().unwrap() < 100);
        }
        states.push(state.clone());
        if state == "succeeded" || state == "failed" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "processing never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(states.first().map(String::as_str), Some("in_progress"));
    assert_eq!(states.last().map(String::as_str), Some("succeeded"));

    let with_video = post(
        &sim,
        "sim-demo-bearer",
        json!({"text": "clip", "media": {"media_ids": [id]}}),
    )
    .await;
    assert_eq!(with_video.status(), StatusCode::CREATED);
    assert_eq!(sim.posts()[0].media_ids, vec![id]);
    assert_spec_clean(&sim);
    sim.stop().await;
}

#[tokio::test]
async fn media_limits_and_processing_failures() {
    let sim = XSim::start(config()).await.unwrap();
    // Over the 5 MB image limit, and a type X does not take.
    assert_eq!(
        initialize(&sim, "image/png", "tweet_image", 6 * 1024 * 1024)
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        initialize(&sim, "image/bmp", "tweet_image", 10)
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        initialize(&sim, "video/mp4", "tweet_video", 600 * 1024 * 1024)
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );

    // An image is ready at finalize.
    let png = b"\x89PNG\r\n\x1a\n0000000000".to_vec();
    let id =
        json_of(initialize(&sim, "image/png", "tweet_image", png.len()).await).await["data"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    assert_eq!(append(&sim, &id, 0, &png).await.status(), StatusCode::OK);
    let done = json_of(finalize(&sim, &id).await).await;
    assert!(done["data"].get("processing_info").is_none());
    // Image plus a video is not a valid post; five images neither (schema); one image is.
    let ok = post(
        &sim,
        "sim-demo-bearer",
        json!({"text": "pic", "media": {"media_ids": [id]}}),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::CREATED);

    // An injected processing failure.
    sim.inject(Fault::MediaProcessingFailure { times: 1 });
    let video = fake_mp4(1000);
    let id = json_of(initialize(&sim, "video/mp4", "tweet_video", video.len()).await).await["data"]
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    append(&sim, &id, 0, &video).await;
    finalize(&sim, &id).await;
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(
        status(&sim, &id).await["data"]["processing_info"]["state"],
        "failed"
    );
    let refused = post(
        &sim,
        "sim-demo-bearer",
        json!({"text": "broken clip", "media": {"media_ids": [id]}}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    sim.stop().await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers() {
    let mut config = config();
    config.rate_limits.create_post = RateLimit {
        limit: 2,
        window: Duration::from_secs(60),
    };
    let sim = XSim::start(config).await.unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let first = post(&sim, "sim-demo-bearer", json!({"text": "one"})).await;
    assert_eq!(first.headers()["x-rate-limit-limit"], "2");
    assert_eq!(first.headers()["x-rate-limit-remaining"], "1");
    let second = post(&sim, "sim-demo-bearer", json!({"text": "two"})).await;
    assert_eq!(second.headers()["x-rate-limit-remaining"], "0");
    let third = post(&sim, "sim-demo-bearer", json!({"text": "three"})).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.headers()["x-rate-limit-limit"], "2");
    assert_eq!(third.headers()["x-rate-limit-remaining"], "0");
    let reset: u64 = third.headers()["x-rate-limit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (now + 59..=now + 62).contains(&reset),
        "reset {reset} vs now {now}"
    );
    assert_eq!(
        json_of(third).await,
        json!({"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429})
    );
    // Per user: the friend still has budget.
    assert_eq!(
        post(&sim, "sim-friend-bearer", json!({"text": "mine"}))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(sim.posts().len(), 3);

    // Injected exhaustion on another endpoint, with a short reset.
    sim.inject(Fault::RateLimitExhausted {
        endpoint: Endpoint::UsersMe,
        reset_in: Duration::from_millis(300),
    });
    let limited = me(&sim, "sim-demo-bearer").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(me(&sim, "sim-demo-bearer").await.status(), StatusCode::OK);
    sim.stop().await;
}

#[tokio::test]
async fn tiny_windows_reset() {
    let mut config = config();
    config.rate_limits.users_me = RateLimit {
        limit: 1,
        window: Duration::from_millis(300),
    };
    let sim = XSim::start(config).await.unwrap();
    assert_eq!(me(&sim, "sim-demo-bearer").await.status(), StatusCode::OK);
    assert_eq!(
        me(&sim, "sim-demo-bearer").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(me(&sim, "sim-demo-bearer").await.status(), StatusCode::OK);
    sim.stop().await;
}

#[tokio::test]
async fn injected_status_delay_and_dropped_connection() {
    let sim = XSim::start(config()).await.unwrap();
    sim.inject(Fault::Status {
        path_prefix: "POST /2/tweets".into(),
        status: 503,
        times: 1,
    });
    let unavailable = post(&sim, "sim-demo-bearer", json!({"text": "try 1"})).await;
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(unavailable).await["status"], 503);
    assert!(sim.posts().is_empty());
    // Only once, and only for that method.
    assert_eq!(
        post(&sim, "sim-demo-bearer", json!({"text": "try 2"}))
            .await
            .status(),
        StatusCode::CREATED
    );

    sim.inject(Fault::Drop {
        path_prefix: "/2/tweets".into(),
        times: 1,
    });
    let dropped = http()
        .post(format!("{}/2/tweets", sim.base_url()))
        .bearer_auth("sim-demo-bearer")
        .json(&json!({"text": "lost"}))
        .send()
        .await;
    let error = dropped.expect_err("the connection must be closed without a response");
    assert!(!error.is_timeout());
    assert_eq!(sim.posts().len(), 1, "a dropped request is not handled");
    assert_eq!(sim.requests().last().unwrap().status, None);
    assert_eq!(
        post(&sim, "sim-demo-bearer", json!({"text": "try 3"}))
            .await
            .status(),
        StatusCode::CREATED
    );

    sim.inject(Fault::Delay {
        path_prefix: "/2/users/me".into(),
        delay: Duration::from_millis(200),
        times: 1,
    });
    let started = Instant::now();
    assert_eq!(me(&sim, "sim-demo-bearer").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));

    // Recorded requests redact credentials to their scheme.
    let recorded = sim.requests();
    assert!(
        recorded
            .iter()
            .all(|r| r.header("authorization").is_none_or(|a| a == "Bearer"))
    );
    sim.stop().await;
}
