//! template.yaml agrees with the code: every function it builds exists as a binary, and every
//! scheduled function runs on the same cron expression the simulator uses.

use nudge_shared::registry;

fn template() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap()
}

/// (logical id, binary, schedule expressions) for each `AWS::Serverless::Function`.
fn functions(t: &str) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = t.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "Type: AWS::Serverless::Function" {
            continue;
        }
        let id = lines[i - 1].trim().trim_end_matches(':').to_string();
        // The resource's block: until the next line with two-space indentation.
        let block: Vec<&str> = lines[i..]
            .iter()
            .skip(1)
            .take_while(|l| {
                !(l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
            })
            .copied()
            .collect();
        let binary = block
            .iter()
            .find_map(|l| l.trim().strip_prefix("Binary: "))
            .unwrap_or_default()
            .to_string();
        let crons = block
            .iter()
            .filter_map(|l| l.trim().strip_prefix("ScheduleExpression: "))
            .map(|s| s.trim_matches('"').to_string())
            .collect();
        out.push((id, binary, crons));
    }
    out
}

#[test]
fn every_function_in_the_template_has_a_binary_crate() {
    let t = template();
    let fns = functions(&t);
    assert!(fns.iter().any(|(_, b, _)| b == "ingest"), "{fns:?}");
    for (id, binary, _) in &fns {
        let main = format!(
            "{}/functions/{binary}/src/main.rs",
            env!("CARGO_MANIFEST_DIR")
        );
        assert!(
            std::path::Path::new(&main).exists(),
            "{id} builds `{binary}`: {main} missing"
        );
    }
}

#[test]
fn scheduled_functions_use_the_registry_cron_expressions() {
    let t = template();
    let fns = functions(&t);
    for f in registry::registry() {
        let (_, _, crons) = fns
            .iter()
            .find(|(_, b, _)| b == f.name)
            .unwrap_or_else(|| panic!("{} is registered but not in template.yaml", f.name));
        let want: Vec<String> = f.schedule.iter().map(|s| s.to_string()).collect();
        assert_eq!(crons, &want, "{}", f.name);
    }
    for (id, binary, _) in &fns {
        assert!(
            registry::find(binary).is_some(),
            "{id} builds `{binary}`, which is not in registry::registry()"
        );
    }
}

/// Top-level resources: (logical id, type, the lines of its block).
fn resources(t: &str) -> Vec<(String, String, Vec<String>)> {
    let lines: Vec<&str> = t.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "Resources:")
        .expect("Resources section");
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    for line in &lines[start + 1..] {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            break; // the next top-level section
        }
        let is_id = line.starts_with("  ")
            && !line.starts_with("   ")
            && !line.trim_start().starts_with('#')
            && line.trim_end().ends_with(':');
        if is_id {
            let id = line.trim().trim_end_matches(':').to_string();
            out.push((id, String::new(), Vec::new()));
        } else if let Some((_, ty, block)) = out.last_mut() {
            if ty.is_empty()
                && let Some(t) = line.strip_prefix("    Type: ")
            {
                *ty = t.trim().to_string();
            }
            block.push(line.to_string());
        }
    }
    out
}

fn resource<'a>(all: &'a [(String, String, Vec<String>)], id: &str) -> &'a [String] {
    &all.iter()
        .find(|(i, _, _)| i == id)
        .unwrap_or_else(|| panic!("{id} not in template.yaml"))
        .2
}

/// The IAM actions a function's policy statements grant, sorted.
fn granted_actions(block: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let policies = block
        .iter()
        .position(|l| l.trim() == "Policies:")
        .expect("Policies");
    let mut in_actions = false;
    for line in &block[policies + 1..] {
        let l = line.trim();
        if line.starts_with("      ") && !line.starts_with("       ") {
            break; // the next property of the function
        }
        if let Some(rest) = l.strip_prefix("Action:") {
            let rest = rest.trim().trim_start_matches('[').trim_end_matches(']');
            out.extend(
                rest.split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string),
            );
            in_actions = rest.is_empty();
        } else if in_actions && let Some(a) = l.strip_prefix("- ") {
            out.push(a.trim().to_string());
        } else if !l.starts_with('#') {
            in_actions = false;
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The DynamoDB operations the store adapter calls, as IAM action names.
fn adapter_operations() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shared/src/store/dynamo");
    let mut src = String::new();
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs")
                // Erasure serves only the operator CLI (`nudge erase-contact`), with the
                // operator's own credentials: no function is granted what it calls.
                && !path.ends_with("erasure.rs")
            {
                src.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let ops = [
        ("get_item", "GetItem"),
        ("batch_get_item", "BatchGetItem"),
        ("query", "Query"),
        ("scan", "Scan"),
        ("put_item", "PutItem"),
        ("update_item", "UpdateItem"),
        ("delete_item", "DeleteItem"),
        ("batch_write_item", "BatchWriteItem"),
        ("transact_write_items", "TransactWriteItems"),
        ("transact_get_items", "TransactGetItems"),
    ];
    ops.iter()
        .filter(|(call, _)| src.contains(&format!(".{call}()")))
        .map(|(_, action)| format!("dynamodb:{action}"))
        .collect()
}

#[test]
fn each_function_is_granted_exactly_what_its_code_uses() {
    let t = template();
    let all = resources(&t);
    let dynamo = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["GetItem", "Query", "PutItem", "UpdateItem"]
            .iter()
            .chain(extra)
            .map(|a| format!("dynamodb:{a}"))
            .collect();
        v.sort();
        v
    };
    let with = |mut v: Vec<String>, more: &[&str]| {
        v.extend(more.iter().map(|s| s.to_string()));
        v.sort();
        v
    };
    // ingest: the batch write path counts a day's rollup and confirms its events in one
    // transaction (ingest/mod.rs); it sends only the pause notice, to the CSMs over SNS, so no SES.
    // reminders: the sweep sends email and SNS. health: fans its run out over SQS.
    let want = [
        (
            "IngestFunction",
            with(
                dynamo(&["TransactWriteItems"]),
                &["secretsmanager:GetSecretValue", "sns:Publish"],
            ),
        ),
        (
            "RemindersFunction",
            with(
                dynamo(&[]),
                &[
                    "secretsmanager:GetSecretValue",
                    "ses:SendEmail",
                    "ses:SendRawEmail",
                    "sns:Publish",
                ],
            ),
        ),
        ("HealthFunction", with(dynamo(&[]), &["sqs:SendMessage"])),
        ("MilestonesFunction", dynamo(&[])),
    ];
    for (id, want) in &want {
        assert_eq!(&granted_actions(resource(&all, id)), want, "{id}");
    }
    let functions: Vec<&str> = all
        .iter()
        .filter(|(_, ty, _)| ty == "AWS::Serverless::Function")
        .map(|(id, _, _)| id.as_str())
        .collect();
    assert_eq!(functions.len(), want.len(), "{functions:?}");

    // Every DynamoDB operation the adapter calls is granted to some function, and no function
    // is granted one the adapter never calls. Scan serves only the CLI (`all_delivery_log`).
    let mut used: Vec<String> = adapter_operations()
        .into_iter()
        .filter(|a| a != "dynamodb:Scan")
        .collect();
    used.sort();
    let mut granted: Vec<String> = want
        .iter()
        .flat_map(|(_, v)| v.iter().filter(|a| a.starts_with("dynamodb:")).cloned())
        .collect();
    granted.sort();
    granted.dedup();
    assert_eq!(granted, used);
}

#[test]
fn the_public_ingest_function_has_reserved_concurrency() {
    let t = template();
    let all = resources(&t);
    let ingest = resource(&all, "IngestFunction");
    assert!(
        ingest
            .iter()
            .any(|l| l.trim() == "ReservedConcurrentExecutions: !If"),
        "{ingest:?}"
    );
    assert!(t.contains("  IngestReservedConcurrency:\n    Type: Number\n    Default: 50\n"));
}

#[test]
fn every_dead_letter_queue_has_an_alarm_to_the_operations_topic() {
    let t = template();
    let all = resources(&t);
    // A queue is a dead-letter queue when something sends what it could not process there:
    // a redrive policy, a schedule's dead-letter config, an on-failure destination.
    let mut dlqs: Vec<String> = Vec::new();
    for (_, _, block) in &all {
        for (i, line) in block.iter().enumerate() {
            let l = line.trim();
            let target = l.strip_prefix("deadLetterTargetArn: !GetAtt ").or_else(|| {
                let prev = block.get(i.wrapping_sub(1)).map(|p| p.trim());
                match prev {
                    Some("DeadLetterConfig:") => l.strip_prefix("Arn: !GetAtt "),
                    Some("Type: SQS") => l.strip_prefix("Destination: !GetAtt "),
                    _ => None,
                }
            });
            if let Some(q) = target.and_then(|t| t.strip_suffix(".Arn")) {
                dlqs.push(q.to_string());
            }
        }
    }
    dlqs.sort();
    dlqs.dedup();
    assert_eq!(
        dlqs,
        [
            "FailedInvocationsQueue",
            "FeedbackDlq",
            "HealthQueueDlq",
            "ScheduleDlq"
        ]
    );
    let alarms: Vec<&Vec<String>> = all
        .iter()
        .filter(|(_, ty, _)| ty == "AWS::CloudWatch::Alarm")
        .map(|(_, _, b)| b)
        .collect();
    for q in &dlqs {
        let watched = alarms.iter().any(|b| {
            b.iter()
                .any(|l| l.trim() == format!("Value: !GetAtt {q}.QueueName"))
                && b.iter()
                    .any(|l| l.trim() == "AlarmActions: [!Ref OperationsTopic]")
                && b.iter()
                    .any(|l| l.trim() == "MetricName: ApproximateNumberOfMessagesVisible")
        });
        assert!(watched, "{q} has no alarm notifying OperationsTopic");
    }
}

/// The secrets a function's role may read (`!Ref` of its GetSecretValue statement), sorted.
fn readable_secrets(block: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_action = false;
    let mut in_resources = false;
    for line in block {
        let l = line.trim();
        if l == "Action: secretsmanager:GetSecretValue" {
            after_action = true;
            continue;
        }
        if after_action && let Some(r) = l.strip_prefix("Resource:") {
            match r.trim().strip_prefix("!Ref ") {
                Some(id) => out.push(id.to_string()),
                None => in_resources = true,
            }
            after_action = false;
            continue;
        }
        if in_resources {
            match l.strip_prefix("- !Ref ") {
                Some(id) => out.push(id.to_string()),
                None => in_resources = false,
            }
        }
    }
    out.sort();
    out
}

#[test]
fn each_function_reads_exactly_the_secrets_its_binary_loads() {
    let t = template();
    let all = resources(&t);
    for (id, binary, _) in functions(&t) {
        let main = std::fs::read_to_string(format!(
            "{}/functions/{binary}/src/main.rs",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        // What the binary asks `Deps` to load, and the secrets and variables that takes.
        let (secrets, vars): (&[&str], &[&str]) = if main.contains("Secrets::ALL") {
            (
                &["LinkSigningKeys", "SigningSecret"],
                &["NUDGE_LINK_KEYS_ARN", "NUDGE_SIGNING_SECRET_ARN"],
            )
        } else if main.contains("Secrets::LINK_KEYS") {
            (&["LinkSigningKeys"], &["NUDGE_LINK_KEYS_ARN"])
        } else {
            assert!(main.contains("Secrets::NONE"), "{binary}: {main}");
            (&[], &[])
        };
        let block = resource(&all, &id);
        assert_eq!(readable_secrets(block), secrets, "{id}");
        let mut set: Vec<&str> = block
            .iter()
            .filter_map(|l| l.trim().split_once(": !Ref "))
            .map(|(k, _)| k)
            .filter(|k| k.ends_with("_ARN") && k.contains("SECRET") || k.contains("LINK_KEYS"))
            .collect();
        set.sort();
        assert_eq!(set, vars, "{id}");
    }
    // Deployed functions never get the local-only secret variables.
    let globals = &t[t.find("Globals:").unwrap()..t.find("Resources:").unwrap()];
    for var in [
        "NUDGE_SIGNING_SECRET",
        "NUDGE_SIGNING_SECRET_PREVIOUS",
        "NUDGE_LINK_KEYS",
    ] {
        assert!(
            globals.contains(&format!(
                "        {var}: !If [SamLocalOnly, \"\", !Ref AWS::NoValue]\n"
            )),
            "{var}"
        );
    }
    assert!(!globals.contains("_ARN: !Ref SigningSecret"));
}
