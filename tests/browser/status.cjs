// The status page in a real browser (run by origin/tests/status_page.rs): Debian's Chromium,
// driven by playwright-core, opens /status with the admin token and checks what a person would
// see: no console error, no Content Security Policy violation, no failed request, the
// stylesheet applied, every chart with at least two points, the breaker and queue tables. It
// saves a full-page screenshot and prints a JSON report; any problem exits non-zero.
//
//   node status.cjs <origin URL> <admin token> <screenshot path>
'use strict';
const { chromium } = require('playwright-core');

const [base, token, screenshot] = process.argv.slice(2);
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const SERIES = ['rate', 'latency', 'hit-ratio'];

/** Records CSP violations from the first byte on (init scripts run before the page's own). */
function watchViolations() {
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (event) => {
    window.__violations.push(`${event.violatedDirective}: ${event.blockedURI || 'inline'}`);
  });
}

/** What the page shows, read in the page. */
function readPage(series) {
  const count = (selector) => document.querySelectorAll(selector).length;
  const points = {};
  const titled = {};
  for (const name of series) {
    points[name] = count(`svg.chart[data-series="${name}"] circle`);
    titled[name] = !!document.querySelector(`svg.chart[data-series="${name}"] > title`);
  }
  return {
    points,
    titled,
    breakers: count('#breakers tbody tr'),
    queues: count('#queues tbody tr'),
    slow: count('#slow tbody tr'),
    cache: count('#cache dt'),
    background: getComputedStyle(document.body).backgroundColor,
    violations: window.__violations,
  };
}

function problemsOf(seen, response) {
  const problems = [];
  if (response.status() !== 200) problems.push(`/status answered ${response.status()}`);
  const headers = response.headers();
  if (!headers['content-security-policy']) problems.push('no Content-Security-Policy header');
  if (headers['cache-control'] !== 'no-store') problems.push(`Cache-Control: ${headers['cache-control']}`);
  for (const name of SERIES) {
    if (seen.points[name] < 2) problems.push(`chart ${name}: ${seen.points[name]} points`);
    if (!seen.titled[name]) problems.push(`chart ${name}: no <title>`);
  }
  if (seen.breakers < 1) problems.push('no breaker rows');
  if (seen.queues < 1) problems.push('no queue rows');
  if (seen.cache < 1) problems.push('no cache figures');
  if (seen.background === 'rgba(0, 0, 0, 0)' || seen.background === 'rgb(255, 255, 255)') {
    problems.push(`the stylesheet was not applied (background ${seen.background})`);
  }
  return problems;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ARGS,
    headless: true,
  });
  try {
    const context = await browser.newContext({
      extraHTTPHeaders: { authorization: `Bearer ${token}` },
      viewport: { width: 1280, height: 900 },
    });
    const page = await context.newPage();
    const errors = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || /Content Security Policy/i.test(message.text())) {
        errors.push(`console: ${message.text()}`);
      }
    });
    page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => {
      errors.push(`request failed: ${request.url()} (${request.failure()?.errorText})`);
    });
    page.on('response', (response) => {
      if (response.status() >= 400) errors.push(`${response.status()} from ${response.url()}`);
    });
    await page.addInitScript(watchViolations);
    const response = await page.goto(`${base}/status`, { waitUntil: 'load', timeout: 30000 });
    const seen = await page.evaluate(readPage, SERIES);
    await page.screenshot({ path: screenshot, fullPage: true });
    const problems = [...problemsOf(seen, response), ...errors, ...seen.violations];
    console.log(JSON.stringify({ ...seen, errors, screenshot }));
    if (problems.length > 0) {
      console.error(problems.join('\n'));
      process.exitCode = 1;
    }
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
