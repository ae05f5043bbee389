//! The SQS adapter of the `Queue` port against moto: what a scheduled run fans out arrives, in
//! batches within SQS's limit of 10, and an unconfigured queue is a clear error.

use std::collections::{BTreeMap, BTreeSet};

use nudge_shared::channels::Queue;
use nudge_shared::channels::sqs::SqsQueue;
use nudge_tests::TestEnv;

#[tokio::test]
async fn work_items_reach_the_functions_sqs_queue_in_batches_of_ten() {
    let env = TestEnv::new("queue_sqs").await;
    let sqs = env.stack.sqs();
    let url = sqs
        .create_queue()
        .queue_name(&env.table)
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let queue = SqsQueue::new(
        sqs.clone(),
        BTreeMap::from([("health".to_string(), url.clone())]),
    );
    let bodies: Vec<String> = (0..23).map(|i| format!("{{\"shard\":{i}}}")).collect();
    queue.enqueue("health", &bodies).await.expect("enqueue");

    let mut received = BTreeSet::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        for m in out.messages() {
            received.insert(m.body().unwrap_or_default().to_string());
        }
        if received.len() == bodies.len() {
            break;
        }
    }
    assert_eq!(received, bodies.into_iter().collect::<BTreeSet<_>>());

    let e = queue
        .enqueue("milestones", &["{}".into()])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "provider rejected the message: no queue configured for milestones: \
         add milestones=<queue url> to NUDGE_QUEUE_URLS"
    );
}
