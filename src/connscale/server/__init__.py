"""The reference MCP server: application, tools and the circle of experts."""
