//! The report's charts: horizontal stacked bars, one row per label, drawn in SVG, with
//! their legend; and the figures in words (escaped text, plurals, percentages). Knows
//! nothing of what the numbers mean.

use handlebars::html_escape;

pub(super) fn esc(text: &str) -> String {
    html_escape(text)
}

pub(super) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(super) fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".to_string()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

/// One coloured piece of a bar.
pub(super) struct Segment {
    pub(super) value: u64,
    /// A `c-…` class from the page's style sheet.
    pub(super) class: &'static str,
    /// What the piece is, for its tooltip ("3 opt-outs").
    pub(super) label: String,
}

pub(super) struct Row {
    pub(super) label: String,
    pub(super) segments: Vec<Segment>,
    /// The text after the bar; the total when empty.
    pub(super) note: String,
}

impl Row {
    pub(super) fn total(&self) -> u64 {
        self.segments.iter().map(|s| s.value).sum()
    }
}

const CHART_WIDTH: u32 = 900;
const LABEL_WIDTH: u32 = 210;
const NOTE_WIDTH: u32 = 190;
const ROW_HEIGHT: u32 = 28;
const BAR_HEIGHT: u32 = 18;

/// A horizontal stacked bar chart; bars are scaled to the largest row total.
pub(super) fn bar_chart(title: &str, rows: &[Row]) -> String {
    let bar_area = CHART_WIDTH - LABEL_WIDTH - NOTE_WIDTH;
    let max = rows.iter().map(Row::total).max().unwrap_or(0).max(1);
    let height = ROW_HEIGHT * rows.len().max(1) as u32 + 6;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH} {height}" width="{CHART_WIDTH}" height="{height}" role="img" aria-label="{title}"><title>{title}</title>"#,
        title = esc(title)
    );
    if rows.is_empty() {
        svg.push_str(r#"<text x="0" y="20" class="value">Nothing yet.</text>"#);
    }
    for (index, row) in rows.iter().enumerate() {
        let y = ROW_HEIGHT * index as u32 + 4;
        let text_y = y + BAR_HEIGHT - 4;
        svg.push_str(&format!(
            r#"<text x="{x}" y="{text_y}" text-anchor="end">{label}</text>"#,
            x = LABEL_WIDTH - 10,
            label = esc(&row.label)
        ));
        let mut x = LABEL_WIDTH as f64;
        for segment in row.segments.iter().filter(|s| s.value > 0) {
            let width = segment.value as f64 * f64::from(bar_area) / max as f64;
            svg.push_str(&format!(
                r#"<rect x="{x:.1}" y="{y}" width="{width:.1}" height="{BAR_HEIGHT}" rx="2" class="{class}"><title>{tip}</title></rect>"#,
                class = segment.class,
                tip = esc(&format!("{}: {}", row.label, segment.label))
            ));
            x += width;
        }
        let note = if row.note.is_empty() {
            row.total().to_string()
        } else {
            row.note.clone()
        };
        svg.push_str(&format!(
            r#"<text x="{x:.1}" y="{text_y}" class="value">{note}</text>"#,
            x = x + 6.0,
            note = esc(&note)
        ));
    }
    svg.push_str("</svg>");
    svg
}

pub(super) fn legend(items: &[(&str, &str)]) -> String {
    let spans: Vec<String> = items
        .iter()
        .map(|(class, label)| format!(r#"<span class="{class}">{}</span>"#, esc(label)))
        .collect();
    format!(r#"<div class="legend">{}</div>"#, spans.join(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_labels_and_scale_to_the_largest_row() {
        let rows = vec![
            Row {
                label: "<b>&".to_string(),
                segments: vec![Segment {
                    value: 4,
                    class: "c-funnel",
                    label: "4".to_string(),
                }],
                note: String::new(),
            },
            Row {
                label: "half".to_string(),
                segments: vec![Segment {
                    value: 2,
                    class: "c-funnel",
                    label: "2".to_string(),
                }],
                note: String::new(),
            },
        ];
        let svg = bar_chart("t", &rows);
        assert!(svg.contains("&lt;b&gt;&amp;"), "{svg}");
        assert!(!svg.contains("<b>"), "{svg}");
        let full = CHART_WIDTH - LABEL_WIDTH - NOTE_WIDTH;
        assert!(svg.contains(&format!(r#"width="{full}.0""#)), "{svg}");
        assert!(svg.contains(&format!(r#"width="{}.0""#, full / 2)), "{svg}");
    }

    #[test]
    fn percentages_never_divide_by_zero() {
        assert_eq!(percent(1, 0), "–");
        assert_eq!(percent(1, 3), "33%");
    }
}
