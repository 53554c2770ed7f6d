use crate::helpers::{TECH_EMAIL, TECH_NAME, TECH_PASSWORD, TestApp, location, session_set_cookie};

#[tokio::test]
async fn anonymous_visitor_is_sent_to_the_login_page_and_back() {
    let app = TestApp::spawn().await;
    let response = app.get_page("/tickets?status=all").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login?next=%2Ftickets%3Fstatus%3Dall");

    let login = app.get_html("/login?next=%2Ftickets%3Fstatus%3Dall").await;
    assert!(login.contains(r#"id="login-email""#));
    assert!(
        login.contains(r#"name="next" value="/tickets?status=all""#),
        "{login}"
    );
}

#[tokio::test]
async fn technician_logs_in_with_a_hardened_session_cookie_and_logs_out() {
    for app in TestApp::spawn_all().await {
        // Act 1: sign in.
        let response = app
            .post_form(
                "/login",
                &[
                    ("email", "ALEX@msp.example"),
                    ("password", TECH_PASSWORD),
                    ("next", "/clients"),
                ],
            )
            .await;
        assert_eq!(response.status(), 303, "{}", app.label);
        assert_eq!(location(&response), "/clients");
        let cookie = session_set_cookie(&response).expect("login sets the session cookie");
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(
            !cookie.contains("Secure"),
            "plain-http public URL: no Secure flag ({cookie})"
        );
        let session_id = cookie.split(';').next().unwrap().to_owned();

        let tickets = app.get_html("/tickets").await;
        assert!(
            tickets.contains(&format!(
                r#"<strong id="current-technician">{TECH_NAME}</strong>"#
            )),
            "{}",
            app.label
        );

        // Act 2: sign out.
        let response = app.post_form("/logout", &[]).await;
        assert_eq!(response.status(), 303);
        assert_eq!(location(&response), "/login");
        let after = app.get_page("/tickets").await;
        assert_eq!(
            after.status(),
            303,
            "signed out: back to login ({})",
            app.label
        );

        // The old session id is dead server-side, even if someone kept the cookie.
        let replay = app
            .api
            .get(app.url("/tickets"))
            .header("cookie", &session_id)
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status(), 303, "{}", app.label);
        assert!(location(&replay).starts_with("/login"));
    }
}

#[tokio::test]
async fn each_login_gets_a_new_session_id() {
    let app = TestApp::spawn().await;
    let first = app.login(TECH_EMAIL, TECH_PASSWORD).await;
    let first_id = session_set_cookie(&first)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let second = app.login(TECH_EMAIL, TECH_PASSWORD).await;
    let second_id = session_set_cookie(&second)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(first_id, second_id, "the session id is cycled on login");
    let replay = app
        .api
        .get(app.url("/tickets"))
        .header("cookie", &first_id)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303, "the pre-login id no longer works");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    for (email, password) in [
        (TECH_EMAIL, "not the password"),
        ("nobody@msp.example", TECH_PASSWORD),
        ("not-an-email", "x"),
    ] {
        let response = app.login(email, password).await;
        assert_eq!(response.status(), 200, "{email}");
        assert!(
            session_set_cookie(&response).is_none(),
            "no session for a failed login"
        );
        let html = response.text().await.unwrap();
        assert!(
            html.contains(
                r#"<div class="flash error" id="login-error">Wrong e-mail or password.</div>"#
            ),
            "{html}"
        );
        assert!(
            !html.contains(password) || password == "x",
            "the password is never echoed"
        );
    }
    assert_eq!(app.get_page("/tickets").await.status(), 303);
}

#[tokio::test]
async fn repeated_failed_logins_are_rate_limited() {
    let app = TestApp::spawn().await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            app.login(TECH_EMAIL, "wrong password")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..10], &[200; 10]);
    assert_eq!(&statuses[10..], &[429, 429]);
    // Even the right password is refused while limited.
    assert_eq!(app.login(TECH_EMAIL, TECH_PASSWORD).await.status(), 429);
}

#[tokio::test]
async fn login_only_redirects_to_local_paths() {
    let app = TestApp::spawn().await;
    let response = app
        .post_form(
            "/login",
            &[
                ("email", TECH_EMAIL),
                ("password", TECH_PASSWORD),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/tickets");
}

#[tokio::test]
async fn behind_an_https_proxy_the_cookie_is_secure_and_the_public_origin_is_trusted() {
    let app = TestApp::spawn_with_public_url("https://help.msp.example").await;
    // The proxy forwards the browser's Origin unchanged while Host is the internal address.
    let response = app
        .browser
        .post(app.url("/login"))
        .header("origin", "https://help.msp.example")
        .header("sec-fetch-site", "same-origin")
        .form(&[("email", TECH_EMAIL), ("password", TECH_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = session_set_cookie(&response).unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");

    let foreign = app
        .browser
        .post(app.url("/login"))
        .header("origin", "https://help.evil.example")
        .form(&[("email", TECH_EMAIL), ("password", TECH_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
}
