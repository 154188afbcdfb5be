'use strict';
// Where the npm tools of scripts/luci-deps.sh are (.tools/luci), and the
// ESLint setup for LuCI views: LuCI's conventions (script source type, a
// top-level return, browser globals plus _, N_, L, E) with, per view, only the
// modules its 'require' lines load, so using an unrequired module is an error.

const fs = require('fs');
const path = require('path');
const { REPO } = require('./options');

const TOOLS = process.env.LUCI_TOOLS || path.join(REPO, '.tools', 'luci', 'node_modules');

function tool(name) {
	const dir = path.join(TOOLS, name);
	if (!fs.existsSync(dir))
		throw new Error(name + ' is not installed in ' + TOOLS + ' (run scripts/luci-deps.sh)');
	return require(dir);
}

// The flat ESLint config for one view.
function eslintConfig(requires) {
	const js = tool('@eslint/js');
	const globals = tool('globals');
	const luci = { _: 'readonly', N_: 'readonly', L: 'readonly', E: 'readonly' };
	for (const r of requires)
		luci[r.split('.').pop()] = 'readonly';
	return [
		js.configs.recommended,
		{
			files: ['**/*.js'],
			languageOptions: {
				sourceType: 'script',
				ecmaVersion: 2020,
				globals: Object.assign({}, globals.browser, luci),
				parserOptions: { ecmaFeatures: { globalReturn: true } }
			},
			rules: {
				'no-undef': 'error',
				'no-unused-vars': ['error', { args: 'none' }],
				// LuCI's build minifies views with jsmin, which breaks some regex literals.
				'no-restricted-syntax': ['error', {
					selector: 'Literal[regex]',
					message: 'no regular expression literals in LuCI views (jsmin); use RegExp() or string methods'
				}]
			}
		}
	];
}

module.exports = { tool, eslintConfig, TOOLS };
