//! The label cache: a repeated `/classify` embeds no prompt again (every prompt a hit in
//! `/metrics`) and answers the same bits; `/logits` texts use it too; `--label-cache 0`
//! turns it off; `card` mode bypasses it.

use serde_json::json;

use crate::common::*;

/// A counter or gauge of `/metrics`.
fn metric(server: &taiyi_server::RunningServer, name: &str) -> u64 {
    let (_, _, body) = get(server, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{body}"))
}

fn classify(server: &taiyi_server::RunningServer, labels: &[&str]) -> String {
    let body = json!({"images": [image_b64("examples/data/chelsea_cat.png")], "labels": labels, "templates": "zh"});
    let (status, _, body) = post(server, "/classify", &body.to_string(), &[]);
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn a_repeated_classify_embeds_no_prompt_again() {
    let server = start(config());
    let labels = ["一只猫", "一只狗", "两只老虎"];
    let prompts = (labels.len() * taiyi_core::CHINESE_TEMPLATES.len()) as u64;
    let first = classify(&server, &labels);
    assert_eq!(metric(&server, "taiyi_label_cache_misses_total"), prompts);
    assert_eq!(metric(&server, "taiyi_label_cache_hits_total"), 0);
    assert_eq!(metric(&server, "taiyi_label_cache_entries"), prompts);
    let texts_before = metric(&server, "taiyi_batch_items_count{kind=\"text\"}");
    let second = classify(&server, &labels);
    assert_eq!(
        second, first,
        "a cached answer is the same answer, bit for bit"
    );
    assert_eq!(metric(&server, "taiyi_label_cache_hits_total"), prompts);
    assert_eq!(metric(&server, "taiyi_label_cache_misses_total"), prompts);
    assert_eq!(
        metric(&server, "taiyi_batch_items_count{kind=\"text\"}"),
        texts_before,
        "no text batch ran for the second /classify"
    );
    // One new label: only its 12 prompts are embedded.
    classify(&server, &["一只猫", "一只狗", "熊猫"]);
    assert_eq!(
        metric(&server, "taiyi_label_cache_misses_total"),
        prompts + 12
    );
    // /logits texts are looked up too: the prompts are known, the label alone is not.
    let body = json!({"images": [image_b64("examples/data/chelsea_cat.png")], "texts": ["一张一只猫的照片。", "一只猫"]});
    let (status, _, body) = post(&server, "/logits", &body.to_string(), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        metric(&server, "taiyi_label_cache_misses_total"),
        prompts + 13
    );
    let (_, _, info) = get(&server, "/info");
    assert_eq!(
        json(&info)["label_cache"],
        taiyi_server::DEFAULT_LABEL_CACHE
    );
    assert_eq!(json(&info)["packed_text_batches"], true);
    server.shutdown().expect("clean shutdown");
}

#[test]
fn a_small_cache_keeps_the_most_recent_and_zero_turns_it_off() {
    let mut cfg = config();
    cfg.label_cache = 12;
    let server = start(cfg);
    classify(&server, &["一只猫", "一只狗"]);
    assert_eq!(metric(&server, "taiyi_label_cache_entries"), 12);
    // The dog's prompts came last and stayed: asking for the dog again hits all 12.
    classify(&server, &["一只狗"]);
    assert_eq!(metric(&server, "taiyi_label_cache_hits_total"), 12);
    server.shutdown().expect("clean shutdown");

    let mut cfg = config();
    cfg.label_cache = 0;
    let server = start(cfg);
    let first = classify(&server, &["一只猫", "一只狗"]);
    assert_eq!(classify(&server, &["一只猫", "一只狗"]), first);
    assert_eq!(metric(&server, "taiyi_label_cache_hits_total"), 0);
    assert_eq!(metric(&server, "taiyi_label_cache_entries"), 0);
    server.shutdown().expect("clean shutdown");
}
