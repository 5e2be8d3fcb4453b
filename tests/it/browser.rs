//! The recipient pages in a real browser: headless Chromium, driven through chromedriver,
//! opens the survey link from an email the daemon sent, fills the form in and submits it;
//! `winback survey` must then show the answer. Needs `chromium` and `chromium-driver`
//! (see `support::webdriver`); fails, saying so, without them.

use serde_json::json;

use crate::recipients::{ADA, PUBLIC_URL, Running, survey_link};
use crate::support::webdriver::Browser;

/// A PNG file starts with these eight bytes.
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.len() > 24 && png[..8] == PNG_SIGNATURE && &png[12..16] == b"IHDR",
        "not a PNG: {:?}",
        &png[..png.len().min(24)]
    );
    let number = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (number(16), number(20))
}

/// Points the page's forms and links under [`PUBLIC_URL`] at the daemon, as the reverse
/// proxy in front of it would answer them.
fn through_the_proxy(browser: &Browser, running: &Running) {
    browser.execute(
        "const [from, to] = arguments;
         for (const element of document.querySelectorAll('form[action], a[href]')) {
             for (const name of ['action', 'href']) {
                 const value = element.getAttribute(name);
                 if (value && value.startsWith(from)) {
                     element.setAttribute(name, to + value.slice(from.length));
                 }
             }
         }",
        json!([PUBLIC_URL, running.base_url]),
    );
}

#[test]
fn a_recipient_answers_the_survey_in_a_browser() {
    // The browser first: without Chromium the test fails at once, saying what to install.
    let mut browser = Browser::start();
    let mut running = Running::start();
    let link = survey_link(&running, &running.message_to(ADA, 0));

    assert!(link.starts_with(PUBLIC_URL), "{link}");
    let link = running.local(&link);
    browser.navigate(&link);
    browser.wait_for_title("Why did you leave?");
    assert_eq!(browser.current_url(), link);
    through_the_proxy(&browser, &running);
    let heading = browser.text(&browser.find("h1"));
    assert_eq!(heading, "Ada, may we ask why you left?");

    // A screenshot of the form as the recipient sees it.
    let screenshot = browser.dir().join("survey.png");
    let png = browser.screenshot(&screenshot);
    let (width, height) = png_size(&png);
    assert!(
        (200..=4000).contains(&width) && (200..=4000).contains(&height),
        "an implausible screenshot size {width}x{height}"
    );
    // A blank page compresses to a few hundred bytes; a rendered form does not.
    assert!(
        png.len() > 5_000,
        "a suspiciously small screenshot: {} bytes",
        png.len()
    );
    assert_eq!(std::fs::read(&screenshot).unwrap(), png);

    // Fill it in like a person: two radio buttons, a few lines of text.
    let price = browser.find("#reason-price");
    assert!(!browser.is_selected(&price));
    // Clicking the label selects its radio button, as it does for a person.
    browser.click(&browser.find("label[for=reason-price]"));
    assert!(browser.is_selected(&price));
    browser.click(&browser.find("#return-maybe"));
    let better = browser.find("#better");
    let words = "Faster answers from support.\nClearer invoices — and fewer of them.";
    browser.type_text(&better, words);
    assert_eq!(browser.value(&better), words);
    assert!(!browser.is_selected(&browser.find("#stop")));
    assert_eq!(running.survey_report()["total"], 0);

    browser.click(&browser.find("button[type=submit]"));
    browser.wait_for_title("Thank you");
    let heading = browser.text(&browser.find("h1"));
    assert_eq!(heading, "Thank you, Ada");
    assert!(
        !browser.source().contains("will not contact you again"),
        "the thanks page says Ada opted out"
    );

    let report = running.survey_report();
    assert_eq!(report["total"], 1, "{report:#}");
    let answer = &report["answers"][0];
    assert_eq!(answer["email"], ADA);
    assert_eq!(answer["reason"], "price");
    assert_eq!(answer["would_return"], "maybe");
    assert_eq!(answer["better"], words);

    // "Change my answers" shows the form filled in with what was stored.
    through_the_proxy(&browser, &running);
    browser.click(&browser.find("a[href]"));
    browser.wait_for_title("Why did you leave?");
    assert!(browser.is_selected(&browser.find("#reason-price")));
    assert!(browser.is_selected(&browser.find("#return-maybe")));
    assert_eq!(browser.value(&browser.find("#better")), words);

    browser.quit();
    drop(browser);
    running.stop_daemon();
}
