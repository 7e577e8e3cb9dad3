//! The MySQL schema file cut into the statements the driver runs one at a time.

/// Splits the schema file into statements: each ends with `;` at the end of a line, and
/// chunks holding only `--` comments are skipped.
pub(super) fn schema_statements(schema: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in schema.lines() {
        let code = line.trim();
        if code.starts_with("--") && current.trim().is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if code.ends_with(';') {
            statements.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        statements.push(current);
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::schema_statements;

    #[test]
    fn schema_splits_into_create_tables() {
        let statements = schema_statements(include_str!("../../sql/mysql.sql"));
        assert_eq!(statements.len(), 6);
        assert!(statements
            .iter()
            .all(|s| s.trim_start().starts_with("CREATE TABLE IF NOT EXISTS")));
    }
}
