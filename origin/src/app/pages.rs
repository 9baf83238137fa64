//! Server-rendered HTML pages.

use axum::extract::State;
use axum::response::Html;

use super::AppState;

/// `GET /`: the task board.
pub async fn home(State(state): State<AppState>) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Rampart task board</title>\n<link rel=\"stylesheet\" href=\"{css}\">\n</head>\n\
         <body>\n<header><h1>Task board</h1><p class=\"muted\">Served by the Rampart origin {version}</p></header>\n\
         <main class=\"board\" id=\"board\"></main>\n</body>\n</html>\n",
        css = state.assets.stylesheet_path(),
        version = env!("CARGO_PKG_VERSION"),
    ))
}
