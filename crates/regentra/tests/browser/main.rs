//! The browser test: the demo's whole story in headless Chromium against the real `regentra demo`
//! binary — sign in, connect Teams through the simulator's sign-in and consent pages, play a
//! Contoso user on the simulator's Teams page, see the ticket, reply in Teams, see the reply
//! arrive, and verify client federation. A PNG screenshot of each main screen is saved under
//! `target/test-artifacts/browser/`.
//!
//! Needs Debian's `chromium` and `chromedriver` (`apt-get install chromium chromium-driver`).
//! Without them the test prints SKIPPED and passes — except in CI (`CI=true`), where it fails.

mod demo_process;
mod driver;

use std::time::Instant;

use fantoccini::{Client, Locator};
use m365_sim::demo::{CONTOSO_USER_1_ID, SUPPORT_DISPLAY_NAME, SUPPORT_UPN, SUPPORT_USER_ID};
use regentra::demo::PRINTER_MESSAGE;

use demo_process::DemoProcess;
use driver::{ChromeDriver, Screenshots, wait_for, wait_for_text, wait_until};

const REPLY: &str = "Thanks Pat! We restarted the print server; the printer on floor 2 is back.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_story_in_a_real_browser() {
    let Some(tools) = driver::find_browser_tools() else {
        let in_ci = std::env::var("CI").is_ok_and(|value| value == "true");
        assert!(
            !in_ci,
            "CI=true but chromium and/or chromedriver are missing: the browser test must run in \
             CI (apt-get install chromium chromium-driver)"
        );
        println!(
            "SKIPPED: browser test needs chromium + chromedriver (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let started = Instant::now();

    let data_dir = tempfile::tempdir().unwrap();
    let demo = DemoProcess::start(data_dir.path(), &[]).await;
    assert!(demo.banner.contains("What to try:"), "{}", demo.banner);
    let chromedriver = ChromeDriver::start(&tools).await;
    let profile = tempfile::tempdir().unwrap();
    let browser = chromedriver.session(&tools, profile.path()).await;
    let mut shots = Screenshots::new();

    let outcome = walk_the_story(&browser, &demo, &mut shots).await;
    if outcome.is_err() {
        // A picture of where it stopped helps more than the panic message alone.
        shots.take(&browser, "failure").await;
    }
    let _ = browser.close().await;
    let status = demo.interrupt_and_wait().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(
        status.success(),
        "regentra demo exits 0 on Ctrl-C: {status:?}"
    );
    assert!(shots.saved.len() >= 9, "{:?}", shots.saved);
    println!(
        "browser test: the whole story took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Runs the steps, catching a failed assertion so the caller can still screenshot and clean up.
async fn walk_the_story(
    browser: &Client,
    demo: &DemoProcess,
    shots: &mut Screenshots,
) -> Result<(), Box<dyn std::any::Any + Send>> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(story(browser, demo, shots))
        .catch_unwind()
        .await
}

async fn story(browser: &Client, demo: &DemoProcess, shots: &mut Screenshots) {
    let app = demo.app_url.as_str();

    // Sign in with the login the demo printed.
    browser.goto(&format!("{app}/login")).await.unwrap();
    wait_for(browser, "#login-form").await;
    shots.take(browser, "login").await;
    let email = wait_for(browser, "#login-email").await;
    email.send_keys(&demo.technician_email).await.unwrap();
    let password = wait_for(browser, "#login-password").await;
    password.send_keys(&demo.technician_password).await.unwrap();
    click(browser, "#login-submit").await;
    wait_for(browser, "#ticket-list, #no-tickets").await;
    let who = wait_for(browser, "#current-technician")
        .await
        .text()
        .await
        .unwrap();
    assert!(!who.trim().is_empty(), "the signed-in technician is shown");

    // Settings → Integrations: the Teams Chat Bridge card, not connected yet.
    click(browser, "#nav-settings").await;
    wait_for(browser, "#teams-card[data-state='disconnected']").await;
    shots.take(browser, "integrations-disconnected").await;

    // Connect Teams Chat → the simulator's sign-in and consent pages → back, Connected.
    click(browser, "#teams-connect").await;
    wait_for(browser, "#signin-form").await;
    wait_for(browser, "#login")
        .await
        .send_keys(SUPPORT_UPN)
        .await
        .unwrap();
    shots.take(browser, "sim-sign-in").await;
    click(browser, "#next").await;
    wait_for(browser, "#consent-form").await;
    let scopes = browser
        .find_all(Locator::Css("li.scope"))
        .await
        .unwrap()
        .len();
    assert_eq!(scopes, 5, "the five delegated permissions are asked for");
    shots.take(browser, "sim-consent").await;
    click(browser, "#accept").await;
    wait_for(browser, "#teams-card[data-state='connected']").await;
    let account = wait_for_text(browser, "#teams-account", SUPPORT_UPN).await;
    assert!(account.contains("Connected as"), "{account}");
    let state = wait_for(browser, "#teams-state")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(state.trim(), "Connected");
    shots.take(browser, "teams-connected").await;

    // The simulator's Teams page: Pat Lee (Contoso) writes to the support account.
    browser.goto(&demo.teams_page_url).await.unwrap();
    wait_for(browser, "#user-select")
        .await
        .select_by_value(CONTOSO_USER_1_ID)
        .await
        .unwrap();
    wait_for(browser, "#peer-select")
        .await
        .select_by_value(SUPPORT_USER_ID)
        .await
        .unwrap();
    click(browser, "#open-button").await;
    wait_for(browser, "#chat-id, #no-messages").await;
    wait_for(browser, "#message-input")
        .await
        .send_keys(PRINTER_MESSAGE)
        .await
        .unwrap();
    click(browser, "#send-button").await;
    wait_for_text(browser, "#messages li.message.mine .body", PRINTER_MESSAGE).await;
    assert!(
        browser.find(Locator::Css("#delivery-note")).await.is_err(),
        "Teams delivered the message (Contoso allows the MSP)"
    );
    shots.take(browser, "teams-page-client-message").await;

    // A poll now instead of waiting up to 10 s for the scheduler.
    poll_now(demo).await;

    // The ticket list shows it under Contoso.
    browser.goto(&format!("{app}/tickets")).await.unwrap();
    let row = wait_for_text(browser, ".ticket-row", PRINTER_MESSAGE).await;
    assert!(
        row.contains("Contoso"),
        "the ticket belongs to Contoso: {row}"
    );
    assert!(row.contains("Pat Lee"), "requested by Pat Lee: {row}");
    shots.take(browser, "ticket-list").await;

    // Open it and reply in Teams.
    let link = browser
        .find(Locator::XPath(&format!(
            "//a[contains(@class, 'ticket-link') and normalize-space(.)='{PRINTER_MESSAGE}']"
        )))
        .await
        .expect("the ticket's link");
    link.click().await.unwrap();
    let subject = wait_for(browser, "#ticket-subject")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(subject.trim(), PRINTER_MESSAGE);
    wait_for_text(browser, "#ticket-client", "Contoso").await;
    wait_for_text(browser, ".entry-client_message", PRINTER_MESSAGE).await;
    wait_for(browser, "#reply-text")
        .await
        .send_keys(REPLY)
        .await
        .unwrap();
    click(browser, "#reply-send").await;
    wait_until("the reply to show as sent", || async {
        let entries = browser.find_all(Locator::Css(".entry-reply")).await.ok()?;
        for entry in entries {
            let text = entry.text().await.ok()?;
            if !text.contains(REPLY) {
                continue;
            }
            let badge = entry.find(Locator::Css(".delivery-state")).await.ok()?;
            if badge.attr("data-state").await.ok()?.as_deref() == Some("sent") {
                return Some(());
            }
        }
        None
    })
    .await;
    shots.take(browser, "ticket-reply-sent").await;

    // The reply is in Teams, from the support account.
    browser
        .goto(&format!(
            "{}?user={CONTOSO_USER_1_ID}&peer={SUPPORT_USER_ID}",
            demo.teams_page_url
        ))
        .await
        .unwrap();
    let theirs = wait_for_text(browser, "#messages li.message:not(.mine)", REPLY).await;
    assert!(
        theirs.contains(SUPPORT_DISPLAY_NAME),
        "the reply comes from the support account: {theirs}"
    );
    shots.take(browser, "teams-page-reply").await;

    // Settings → Integrations → Verify Client Federation.
    browser.goto(&format!("{app}/tickets")).await.unwrap();
    click(browser, "#nav-settings").await;
    click(browser, "#federation-verify").await;
    wait_for(browser, "#federation-results").await;
    for (client, status, label, reason) in [
        (
            "Contoso",
            "connected",
            "Connected",
            "Last message from Contoso received",
        ),
        ("Fabrikam", "blocked", "Blocked", ""),
        (
            "Tailspin Toys",
            "unknown",
            "Unknown",
            "tenant ID of Tailspin Toys is wrong",
        ),
    ] {
        let row = browser
            .find(Locator::XPath(&format!(
                "//tr[contains(@class, 'federation-row')][td[contains(@class, 'federation-client') and normalize-space(.)='{client}']]"
            )))
            .await
            .unwrap_or_else(|_| panic!("a federation row for {client}"));
        assert_eq!(
            row.attr("data-status").await.unwrap().as_deref(),
            Some(status),
            "{client}"
        );
        let badge = row
            .find(Locator::Css(".federation-status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(badge.trim(), label, "{client}");
        let reasons = row
            .find(Locator::Css(".federation-reasons"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!reasons.trim().is_empty(), "{client} has reasons");
        assert!(reasons.contains(reason), "{client}: {reasons}");
    }
    shots.take(browser, "federation-verdicts").await;
}

/// Clicks the element `css` once it exists.
async fn click(browser: &Client, css: &str) {
    wait_for(browser, css).await.click().await.unwrap();
}

/// `POST /api/v1/integrations/teams/poll` with the demo's API token. A 409 means the demo's
/// 10 s scheduler is polling at this very moment: try again until our own cycle has run.
async fn poll_now(demo: &DemoProcess) {
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/integrations/teams/poll", demo.app_url);
    wait_until("a poll cycle of our own", || async {
        let response = http
            .post(&url)
            .bearer_auth(&demo.api_token)
            .send()
            .await
            .ok()?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        match status.as_u16() {
            200 => Some(()),
            409 => None,
            _ => panic!("poll now answered {status}: {body}"),
        }
    })
    .await;
}
