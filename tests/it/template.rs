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
