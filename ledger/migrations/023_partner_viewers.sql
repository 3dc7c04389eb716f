-- Partner viewers of the administration panel (issue 20): logins an Admin
-- creates for one partner. They sign in like admin users but carry the role
-- 'Partner' and the partner they may see; every /admin JSON route refuses
-- that role, and the panel shows them only their partner's programs,
-- partner balances, customers and cards, read only.
ALTER TABLE admin_users DROP CONSTRAINT admin_users_role_check;
ALTER TABLE admin_users ADD CONSTRAINT admin_users_role_check CHECK (role IN ('Admin', 'Manager', 'Employee', 'Partner'));
ALTER TABLE admin_users ADD COLUMN partner_id bigint REFERENCES partners (id);
ALTER TABLE admin_users ADD CONSTRAINT admin_users_partner_viewer CHECK ((role = 'Partner') = (partner_id IS NOT NULL));
